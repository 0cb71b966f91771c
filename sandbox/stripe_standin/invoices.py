"""The pages behind an invoice's ``hosted_invoice_url`` and ``invoice_pdf``.

Stripe serves both at public, unguessable URLs (no key needed), which is why a
billing page may link to them. Here ``/i/<token>`` is a read-only receipt (the
business, number, dates, lines, total, paid or due) and ``/i/<token>/pdf`` the
same as a one-page PDF. An open invoice can be paid on the page, with the card on file
or a test card, through ``pay_invoice`` (what ``POST /v1/invoices/<id>/pay`` does): a
decline shows Stripe's message and leaves the invoice open.
"""

from __future__ import annotations

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from sandbox.stripe_standin.core import Obj, StripeApiError
from sandbox.stripe_standin.pages import escape, format_date, format_money, html_page
from sandbox.stripe_standin.state import StripeState

PAY_CARDS = (
    ("pm_card_visa", "Visa •••• 4242 (succeeds)"),
    ("pm_card_visa_chargeDeclined", "Visa •••• 0002 (declined)"),
)


class HostedInvoicePages:
    """The WSGI-side handler of ``/i/<token>`` and ``/i/<token>/pdf``."""

    def __init__(self, state: StripeState) -> None:
        self.state = state

    def __call__(self, request: Request) -> Response:
        token, _, kind = request.path.removeprefix("/i/").partition("/")
        paying = request.method == "POST" and kind == ""
        readable = request.method == "GET" and kind in ("", "pdf")
        receipt = self._receipt(token) if paying or readable else None
        if receipt is not None and paying:
            card = request.form.get("card") or None
            try:
                self.state.pay_invoice(
                    receipt.invoice["id"], {"payment_method": card} if card else {}
                )
            except StripeApiError as error:
                body = receipt.html(error=error.message)
                return html_page(receipt.heading, self.state.business_name, body, status=402)
            return redirect(request.path, code=303)
        if receipt is None:
            return html_page(
                "Not found", self.state.business_name, "<h1>Invoice not found</h1>", status=404
            )
        if kind == "pdf":
            return Response(
                one_page_pdf([receipt.heading, *receipt.rows_as_text()]),
                mimetype="application/pdf",
                headers={"Content-Disposition": f'inline; filename="{receipt.number}.pdf"'},
            )
        return html_page(receipt.heading, self.state.business_name, receipt.html())

    def _receipt(self, token: str) -> Receipt | None:
        url_suffix = f"/i/{token}"
        with self.state.lock:
            for obj in self.state.objects.values():
                if obj.get("object") == "invoice" and (
                    obj.get("hosted_invoice_url") or ""
                ).endswith(url_suffix):
                    return Receipt(obj, [self._line(line) for line in obj["lines"]["data"]])
        return None

    def _line(self, line: Obj) -> tuple[str, str]:
        """(description, amount) of an invoice line, named after its plan as Stripe does."""
        item_id = ((line.get("parent") or {}).get("subscription_item_details") or {}).get(
            "subscription_item"
        )
        subscription = self.state.objects.get(line.get("subscription") or "") or {}
        name = line.get("description") or "Subscription"
        for item in subscription.get("items", {}).get("data", []):
            if item["id"] == item_id:
                product = self.state.objects.get(item["price"]["product"]) or {}
                name = f"{product.get('name', 'Plan')} x {line.get('quantity') or 1}"
        period = line.get("period") or {}
        if period.get("start") and period.get("end"):
            name += f" ({format_date(period['start'])} to {format_date(period['end'])})"
        return name, format_money(line["amount"], line["currency"])


class Receipt:
    """What the hosted page shows of one invoice."""

    def __init__(self, invoice: Obj, lines: list[tuple[str, str]]) -> None:
        self.invoice = invoice
        self.lines = lines
        self.number = str(invoice.get("number") or invoice["id"])
        self.heading = f"Invoice {self.number}"

    @property
    def paid(self) -> bool:
        return bool(self.invoice["status"] == "paid")

    def summary(self) -> list[tuple[str, str]]:
        invoice = self.invoice
        currency = invoice["currency"]
        rows = [
            ("Status", "Paid" if self.paid else str(invoice["status"]).capitalize()),
            ("Date", format_date(invoice["created"])),
            ("Billed to", str(invoice.get("customer_email") or "")),
            *self.lines,
            ("Total", format_money(invoice["total"], currency)),
        ]
        if self.paid:
            rows.append(("Amount paid", format_money(invoice["amount_paid"], currency)))
        else:
            rows.append(("Amount due", format_money(invoice["amount_due"], currency)))
        return rows

    def rows_as_text(self) -> list[str]:
        return [f"{label}: {value}" for label, value in self.summary()]

    def html(self, *, error: str | None = None) -> str:
        rows = "".join(
            f"<tr><th>{escape(label)}</th><td>{escape(value)}</td></tr>"
            for label, value in self.summary()
        )
        state = "paid" if self.paid else "due"
        alert = f"<p class='alert error' role='alert'>{escape(error)}</p>" if error else ""
        return (
            f'<h1 data-testid="invoice-number">{escape(self.heading)}</h1>{alert}'
            f'<section data-testid="invoice" data-state="{state}"><div class="scroll"><table>'
            f"<tbody>{rows}</tbody></table></div>{self._pay_form()}"
            f'<p><a href="{escape(self.invoice["invoice_pdf"])}">Download PDF</a></p></section>'
        )

    def _pay_form(self) -> str:
        if self.invoice["status"] != "open":
            return ""
        choices = (
            "<label><input type='radio' name='card' value='' checked> The card on file</label>"
        )
        choices += "".join(
            f"<label><input type='radio' name='card' value='{token}'> {escape(label)}</label>"
            for token, label in PAY_CARDS
        )
        amount = format_money(self.invoice["amount_remaining"], self.invoice["currency"])
        return (
            f"<form method='post'><fieldset><legend>Pay with</legend>{choices}</fieldset>"
            f"<div class='actions'><button type='submit' data-testid='invoice-pay'>"
            f"Pay {escape(amount)}</button></div></form>"
        )


def one_page_pdf(lines: list[str]) -> bytes:
    """A minimal valid PDF 1.4 with ``lines`` in Helvetica (Latin-1)."""

    def literal(text: str) -> str:
        latin = text.encode("latin-1", "replace").decode("latin-1")
        return "(" + latin.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"

    text = " ".join(f"{literal(line)} Tj 0 -18 Td" for line in lines)
    content = f"BT /F1 12 Tf 72 740 Td {text} ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
