"""Request bodies of the REST API (responses are plain dicts built by the services)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    token_name: str = Field(default="cli", max_length=100)


class DeployBody(_Body):
    env: str = Field(min_length=1, max_length=64)
    ref: str = Field(min_length=1, max_length=200)
    hosts: list[str] | None = None


class RollbackBody(_Body):
    env: str = Field(min_length=1, max_length=64)
    to: str | None = Field(default=None, max_length=255)
