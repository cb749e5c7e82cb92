"""`tenants` and `users` (with an API key)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hookyard.cli.common import load_settings


def _engine() -> Any:
    from hookyard.db.engine import make_engine
    from hookyard.db.migrate import upgrade

    engine = make_engine(load_settings().sqlalchemy_url)
    upgrade(engine)
    return engine


def cmd_tenants(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import IntegrityError

    from hookyard.accounts import identity

    engine = _engine()
    if args.action == "create":
        try:
            identity.create_tenant(engine, args.id, args.name or args.id, args.ban)
        except IntegrityError:
            print(f"hookyard: tenant {args.id!r} (or its BAN) exists", file=sys.stderr)
            return 1
        print(f"tenant {args.id} created")
        return 0
    for t in identity.list_tenants(engine):
        print(f"{t['id']:20} {t['ban'] or '-':12} {t['name']}")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    import getpass

    from sqlalchemy.exc import IntegrityError

    from hookyard.accounts import identity

    engine = _engine()
    if args.action == "list":
        for u in identity.list_users(engine, args.tenant):
            print(f"{u['id']:5} {u['role']:10} {u['tenant'] or '-':16} {u['email']}")
        return 0
    password = None
    if args.password:
        password = getpass.getpass("password (12 characters or more): ")
        if len(password) < 12:
            print("hookyard: the password needs 12 characters or more", file=sys.stderr)
            return 2
    try:
        user_id = identity.create_user(
            engine, args.email, identity.Role(args.role), args.tenant, password, args.name
        )
    except (ValueError, IntegrityError) as exc:
        reason = "a user with that e-mail exists" if isinstance(exc, IntegrityError) else exc
        print(f"hookyard: {reason}", file=sys.stderr)
        return 2
    print(f"user {user_id} created ({args.role}, tenant {args.tenant or '-'})")
    if args.api_key:
        _, key = identity.create_api_key(engine, user_id, args.api_key)
        print(f"API key (shown once): {key}")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tenants = sub.add_parser("tenants", help="list or create tenants")
    tenants.add_argument("action", choices=["list", "create"])
    tenants.add_argument("id", nargs="?", help="create: the tenant id (a-z, 0-9, -, _)")
    tenants.add_argument("--name")
    tenants.add_argument("--ban", help="the tenant's BAN (two letters, nine digits)")
    tenants.set_defaults(func=cmd_tenants)

    users = sub.add_parser("users", help="list or create users (and an API key)")
    users.add_argument("action", choices=["list", "create"])
    users.add_argument("email", nargs="?")
    users.add_argument("--role", choices=["superadmin", "admin", "member", "viewer"])
    users.add_argument("--tenant", help="the user's tenant (none for a superadmin)")
    users.add_argument("--name")
    users.add_argument("--password", action="store_true", help="ask for a password (login)")
    users.add_argument("--api-key", metavar="NAME", help="also create an API key, shown once")
    users.set_defaults(func=cmd_users)
