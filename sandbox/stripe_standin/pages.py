"""What the stand-in's HTML pages share: the look, escaping, dates and amounts."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from werkzeug.wrappers import Response

CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;background:#f6f8fa;
color:#1a1f36}
header{background:#fff;border-bottom:1px solid #e3e8ee;padding:.75rem 1rem}
header p{margin:0}
main{max-width:42rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.5rem 0}
h2{font-size:1.1rem;margin:0 0 .5rem}
section{background:#fff;border:1px solid #e3e8ee;border-radius:8px;padding:1rem;margin:1rem 0}
.badge{display:inline-block;padding:0 .6rem;border-radius:1rem;background:#e3e8ee;font-size:.85rem}
.badge.active,.badge.trialing{background:#d7f7c2}
.badge.past_due,.badge.unpaid,.badge.canceling{background:#ffe1d6}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:.75rem}
.actions form{margin:0}
button,.button{font:inherit;padding:.5rem 1rem;border-radius:6px;border:1px solid #635bff;
background:#635bff;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
.secondary{background:#fff;color:#635bff}
.danger{background:#df1b41;border-color:#df1b41}
a{color:#635bff}
a:focus-visible,button:focus-visible,input:focus-visible{outline:3px solid #0a66ff;
outline-offset:2px}
.alert{padding:.75rem 1rem;border-radius:6px}
.error{background:#ffe1e1}
.notice{background:#d7f7c2}
fieldset{border:0;padding:0;margin:0 0 1rem}
legend{font-weight:600;margin-bottom:.25rem}
label{display:block;padding:.3rem 0}
input[type=number]{font:inherit;width:6rem;padding:.25rem}
.scroll{overflow-x:auto}
table{width:100%;border-collapse:collapse}
th,td{padding:.35rem;text-align:left;border-bottom:1px solid #e3e8ee;white-space:nowrap}
[data-testid=invoice] th{white-space:normal;width:55%}
[data-testid=invoice] td{text-align:right;overflow-wrap:break-word;white-space:normal}
ul.plain{list-style:none;padding:0;margin:0}
.muted{color:#697386;font-size:.9rem}
"""


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def format_date(timestamp: int | None) -> str:
    if timestamp is None:
        return ""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return f"{moment:%B} {moment.day}, {moment.year}"


def format_date_time(timestamp: int) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return f"{format_date(timestamp)}, {moment:%H:%M} UTC"


def format_money(amount: int, currency: str) -> str:
    """``$12.34``, ``-$5.00`` (a credit), ``12.34 EUR``."""
    if currency == "usd":
        return f"{'-' if amount < 0 else ''}${abs(amount) / 100:,.2f}"
    return f"{amount / 100:,.2f} {currency.upper()}"


def html_page(title: str, business: str, body: str, *, status: int = 200) -> Response:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · {escape(business)}</title>"
        f"<style>{CSS}</style></head><body><main>{body}</main></body></html>"
    )
    return Response(document, status=status, mimetype="text/html")
