"""``migrations:``: the command that lists the database migrations applied, so that a release
records them and a rollback that would cross an irreversible one is refused.

```yaml
migrations:
  command: php artisan ferryman:migrations   # prints "VERSION reversible|irreversible" lines
  run_on: target          # target: the first host, in the live release; or deploy_host
  timeout: 60s
```

The line format is in ``commands/migrations.py`` and ``docs/config.md``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

from ferryman.config.served import _refused, seconds_between, seconds_schema
from ferryman.said import said

ListTimeout = Annotated[
    float, PlainValidator(seconds_between(0, 600, False)), WithJsonSchema(seconds_schema(0, 600))
]


class Migrations(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(min_length=1, max_length=4096)
    run_on: Literal["target", "deploy_host"] = "target"
    timeout: ListTimeout = 60.0

    @model_validator(mode="after")
    def _valid(self) -> Migrations:
        if not self.command.strip() or "\x00" in self.command:
            raise _refused("migrations", said("command: a shell command"))
        return self
