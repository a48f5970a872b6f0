"""What the API answers about database migrations (``migrations:``): the migrations a release
brought in, and what going back to a release would cross."""

from __future__ import annotations

from pydantic import Field

from ferryman.api.views import View


class MigrationRef(View):
    version: str
    reversible: bool


class MigrationCrossing(View):
    """What going back to ``release`` crosses: every migration the database got since, and
    those of them that cannot be undone. ``blocked``: a rollback there is refused unless a
    master forces it with a reason."""

    release: str
    crossed: list[MigrationRef]
    irreversible: list[str]
    unknown: str = Field(description="why nothing can be known (the newest listing failed)")
    blocked: bool
    basis: str = Field(description="the listing the release's migrations were read from")


class ReleaseMigrations(View):
    applied: list[MigrationRef] = Field(description="the migrations this release brought in")
    crossing: MigrationCrossing = Field(description="what rolling back to it would cross")
