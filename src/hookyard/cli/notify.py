"""`notify preview KIND` and `notify test EMAIL`: a kind's e-mail as people get it (from
sample data), and one e-mail through the configured SMTP server to check the setting."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hookyard.cli.common import load_settings
from hookyard.notify.kinds import Kind

SAMPLE_TENANT = "Acme (sample)"


def cmd_preview(args: argparse.Namespace) -> int:
    from hookyard.notify import render
    from hookyard.notify.samples import sample

    rendered = render.render_one(sample(Kind(args.kind)), SAMPLE_TENANT)
    if args.format == "text":
        out = rendered.text
    elif args.format == "html":
        out = rendered.html
    else:
        sender = "hookyard <notifications@example.com>"
        out = render.message(rendered, sender, "you@example.com", args.kind).as_string()
    if args.out is None:
        sys.stdout.write(out)
        return 0
    try:
        Path(args.out).write_text(out, encoding="utf-8")
    except OSError as exc:
        print(f"hookyard: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"{args.kind} ({args.format}) written to {args.out}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from hookyard.contacts import validate_email
    from hookyard.notify import render
    from hookyard.notify.samples import sample
    from hookyard.notify.smtp import SmtpSettings, send_all

    address, error = validate_email(args.email)
    if address is None:
        print(f"hookyard: {args.email!r} is no e-mail address: {error}", file=sys.stderr)
        return 2
    try:
        smtp = SmtpSettings.from_settings(load_settings())
    except ValueError as exc:
        print(f"hookyard: {exc}", file=sys.stderr)
        return 2
    if smtp is None:
        print("hookyard: e-mail is off: set HOOKYARD_SMTP_HOST (and HOOKYARD_SMTP_FROM)",
              file=sys.stderr)  # fmt: skip
        return 2
    rendered = render.render_one(sample(Kind(args.kind)), SAMPLE_TENANT)
    test = render.Rendered(
        f"{render.PREFIX} Test: {rendered.subject.removeprefix(render.PREFIX).strip()}",
        rendered.text,
        rendered.html,
    )
    [outcome] = send_all(smtp, [render.message(test, smtp.sender, address, "test")])
    where = f"{smtp.host}:{smtp.port}"
    if not outcome.sent:
        print(f"hookyard: the SMTP server at {where} did not take the e-mail: {outcome.error}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"sent a test e-mail ({args.kind} sample) to {address} through {where}")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    notify = sub.add_parser("notify", help="preview notification e-mails, send a test e-mail")
    actions = notify.add_subparsers(dest="action", required=True)
    kinds = [k.value for k in Kind]
    preview = actions.add_parser("preview", help="render a kind's e-mail from sample data")
    preview.add_argument("kind", choices=kinds, metavar="KIND", help=", ".join(kinds))
    preview.add_argument("--out", metavar="FILE", help="write there instead of stdout")
    preview.add_argument(
        "--format",
        choices=["eml", "text", "html"],
        default="eml",
        help="the whole e-mail (eml, default), or its text or HTML part",
    )
    preview.set_defaults(func=cmd_preview)
    test = actions.add_parser("test", help="send one e-mail through the configured SMTP server")
    test.add_argument("email", metavar="EMAIL")
    test.add_argument("--kind", choices=kinds, default=Kind.BRAND_VERIFIED.value, metavar="KIND")
    test.set_defaults(func=cmd_test)
