"""A service with pydantic models (imported only when pydantic is installed)."""

from __future__ import annotations

import pydantic

from ritornello import Context, Service


class User(pydantic.BaseModel):
    name: str
    age: int


users = Service("Users")


@users.handler()
async def older(ctx: Context, user: User) -> User:
    return User(name=user.name, age=user.age + 1)
