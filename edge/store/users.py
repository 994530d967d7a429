"""The panel's users: names, roles and argon2 password hashes (argon2-cffi), nothing in clear.

A wrong name costs as much time as a wrong password (a dummy hash is checked), so the login page
cannot be used to find out which names exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from edge.store.frame_store import FrameStore, utc_now
from edge.store.models import User

ROLES = ("viewer", "technician")
MIN_PASSWORD = 10
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Checked when the name is unknown, so that it takes as long as a wrong password (made once,
    on the first login: hashing costs tens of milliseconds, every command would pay it at import)."""
    return _hasher.hash("not a password of anyone's")


class UserError(ValueError):
    """A user change that cannot be made; the message names the user and why."""


@dataclass(frozen=True)
class UserEntry:
    id: int
    name: str
    role: str
    created_utc: datetime
    last_login_utc: datetime | None


def _entry(user: User) -> UserEntry:
    return UserEntry(user.id, user.name, user.role, user.created_utc, user.last_login_utc)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password is too short: at least {MIN_PASSWORD} characters")


def add_user(store: FrameStore, name: str, password: str, role: str) -> UserEntry:
    if not NAME.match(name):
        raise UserError(f"user name {name!r}: 1-64 letters, digits and . _ @ - only")
    if role not in ROLES:
        raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")
    check_password(password)
    with store.session() as session:
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise UserError(f"user {name} exists already")
        user = User(name=name, password_hash=_hasher.hash(password), role=role, created_utc=utc_now())
        session.add(user)
        session.commit()
        return _entry(user)


def remove_user(store: FrameStore, name: str) -> None:
    with store.session() as session:
        if session.execute(delete(User).where(User.name == name)).rowcount == 0:
            raise UserError(f"no user {name}")
        session.commit()


def set_password(store: FrameStore, name: str, password: str) -> None:
    check_password(password)
    with store.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise UserError(f"no user {name}")
        user.password_hash = _hasher.hash(password)
        session.commit()


def users(store: FrameStore) -> list[UserEntry]:
    with store.session() as session:
        return [_entry(user) for user in session.scalars(select(User).order_by(User.name))]


def user_by_id(store: FrameStore, user_id: int) -> UserEntry | None:
    with store.session() as session:
        user = session.get(User, user_id)
        return None if user is None else _entry(user)


def authenticate(store: FrameStore, name: str, password: str) -> UserEntry | None:
    """The user when `password` is theirs, else None; a hash made with older argon2 parameters is
    replaced by one with today's on a successful login."""
    with store.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        try:
            _hasher.verify(user.password_hash if user else _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        user.last_login_utc = utc_now()
        session.commit()
        return _entry(user)
