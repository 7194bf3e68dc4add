"""Proposal documents: the sections of a proposal built from the deal's facts and its executive summary, and
their renderings as HTML (a Jinja2 template an org can replace), DOCX (python-docx) and PDF (fpdf2, pure Python:
no browser or system tool; available when the `fpdf2` package is installed).

An org points `proposal_template_dir` (org setting) at a folder of its own; a `proposal.html` there replaces the
built-in one (`proposals/templates/proposal.html`), and it can `{% extends "base_proposal.html" %}` to change only
some blocks. The template receives `document` (a `ProposalDocument`) and `today`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from closewise.errors import InvalidInput
from closewise.proposals.differentiation import PERSONA_LABELS, TalkingPoint
from closewise.proposals.summary import DealFacts, ExecutiveSummary, date_text, money_text

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE_NAME = "proposal.html"
FORMATS = ("html", "docx", "pdf")


@dataclass(frozen=True)
class Section:
    title: str
    paragraphs: tuple[str, ...] = ()
    bullets: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProposalDocument:
    title: str
    customer: str
    prepared_by: str | None
    prepared_on: date
    summary: ExecutiveSummary
    sections: tuple[Section, ...]
    pricing: tuple[tuple[str, str], ...]  # (item, amount text)


def build_document(facts: DealFacts, summary: ExecutiveSummary, points: Sequence[TalkingPoint]) -> ProposalDocument:
    """The proposal's sections after the executive summary: the situation, the proposed solution and its value,
    why us (against the named competitor, per persona of the buying group), pricing and next steps."""
    situation = []
    for answer in facts.answers:
        if answer.evidence and answer.answer in ("yes", "partial"):
            label = answer.question.replace("_", " ").capitalize()
            situation.append(f"{label}: {answer.evidence.rstrip('.')} ({answer.answer}).")
    solution = (
        f"{facts.deal_name}: set up on {facts.account}'s own CRM history, with the forecast, deal risk and coaching "
        "views the buying group saw in the evaluation.",
    )
    value = tuple(f"{c}." if not c.endswith(".") else c for c in facts.criteria_met[-4:])
    personas = {c.role for c in facts.contacts if c.role}
    why = tuple(f"{PERSONA_LABELS.get(p.persona, p.persona)}: {p.headline}. {p.detail}" for p in points
                if p.persona in personas or not personas)
    competitor = (f"Compared with {facts.competitor}:",) if facts.competitor else ()
    steps = [s for s in (facts.next_step,) if s] + [f"Complete: {c.rstrip('.')}" for c in facts.criteria_open]
    if facts.close_date is not None:
        steps.append(f"Signature by {date_text(facts.close_date)}")
    sections = (
        Section("The situation", paragraphs=() if situation else (
            f"What {facts.account} shared in discovery is summarised above.",), bullets=tuple(situation)),
        Section("Proposed solution and value", paragraphs=solution,
                bullets=value or ("Milestones agreed with the buying group are listed in the next steps.",)),
        Section("Why us", paragraphs=competitor, bullets=why),
        Section("Next steps", bullets=tuple(steps) or ("Agree the next meeting.",)),
    )
    pricing = ((facts.deal_name, money_text(facts.amount, facts.currency)),)
    return ProposalDocument(title=f"Proposal for {facts.account}", customer=facts.account,
                            prepared_by=facts.owner, prepared_on=facts.today, summary=summary,
                            sections=sections, pricing=pricing)


def plain_text(document: ProposalDocument) -> str:
    """The document's words (for the quality checks), without markup."""
    lines = [document.title, document.summary.title, *document.summary.paragraphs]
    for section in document.sections:
        lines += [section.title, *section.paragraphs, *section.bullets]
    lines += [f"{item}: {amount}" for item, amount in document.pricing]
    return "\n".join(lines)


def environment(template_dir: Path | None = None) -> Environment:
    loaders = [FileSystemLoader(str(template_dir))] if template_dir is not None else []
    env = Environment(loader=ChoiceLoader([*loaders, FileSystemLoader(str(TEMPLATES))]),
                      autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["long_date"] = date_text
    return env


def render_html(document: ProposalDocument, *, template_dir: Path | None = None) -> str:
    if template_dir is not None and not template_dir.is_dir():
        raise InvalidInput(f"the proposal template folder {template_dir} does not exist",
                           where="proposal_template_dir")
    return environment(template_dir).get_template(TEMPLATE_NAME).render(document=document, today=document.prepared_on)


def render_docx(document: ProposalDocument) -> bytes:
    from docx import Document
    from docx.shared import Pt

    doc = Document()
    doc.core_properties.title = document.title
    doc.add_heading(document.title, level=0)
    byline = f"Prepared {date_text(document.prepared_on)}"
    doc.add_paragraph(byline + (f" by {document.prepared_by}" if document.prepared_by else ""))
    doc.add_heading(document.summary.title, level=1)
    for paragraph in document.summary.paragraphs:
        doc.add_paragraph(paragraph)
    for section in document.sections:
        doc.add_heading(section.title, level=1)
        for paragraph in section.paragraphs:
            doc.add_paragraph(paragraph)
        for bullet in section.bullets:
            doc.add_paragraph(bullet, style="List Bullet")
    doc.add_heading("Pricing", level=1)
    table = doc.add_table(rows=1, cols=2)
    table.style = "Light Grid Accent 1"
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Item", "Investment"
    for item, amount in document.pricing:
        cells = table.add_row().cells
        cells[0].text, cells[1].text = item, amount
    for style in ("Normal", "List Bullet"):
        doc.styles[style].font.size = Pt(11)
    buffer = io.BytesIO()
    doc.save(buffer)
    return buffer.getvalue()


def _latin1(text: str) -> str:
    swaps = {"\u201c": '"', "\u201d": '"', "\u2019": "'", "\u2018": "'", "\u2013": "-", "\u2014": "-",
             "\u2026": "..."}
    return "".join(swaps.get(ch, ch) for ch in text).encode("latin-1", "replace").decode("latin-1")


def pdf_available() -> bool:
    try:
        import fpdf  # noqa: F401
    except ImportError:
        return False
    return True


def render_pdf(document: ProposalDocument) -> bytes:
    """A PDF written in pure Python with fpdf2 (core fonts, so Latin-1 text)."""
    try:
        from fpdf import FPDF
    except ImportError:
        raise InvalidInput("PDF needs the fpdf2 package (pip install fpdf2); use docx or html",
                           where="format") from None
    pdf = FPDF()
    pdf.set_title(_latin1(document.title))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.multi_cell(0, 10, _latin1(document.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    byline = f"Prepared {date_text(document.prepared_on)}" + (
        f" by {document.prepared_by}" if document.prepared_by else "")
    pdf.multi_cell(0, 6, _latin1(byline), new_x="LMARGIN", new_y="NEXT")

    def heading(text: str) -> None:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, _latin1(text), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)

    heading(document.summary.title)
    for paragraph in document.summary.paragraphs:
        pdf.multi_cell(0, 6, _latin1(paragraph), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
    for section in document.sections:
        heading(section.title)
        for paragraph in section.paragraphs:
            pdf.multi_cell(0, 6, _latin1(paragraph), new_x="LMARGIN", new_y="NEXT")
        for bullet in section.bullets:
            pdf.multi_cell(0, 6, _latin1("- " + bullet), new_x="LMARGIN", new_y="NEXT")
    heading("Pricing")
    for item, amount in document.pricing:
        pdf.multi_cell(0, 6, _latin1(f"{item}: {amount}"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def render(document: ProposalDocument, fmt: str, *, template_dir: Path | None = None) -> bytes:
    if fmt == "html":
        return render_html(document, template_dir=template_dir).encode("utf-8")
    if fmt == "docx":
        return render_docx(document)
    if fmt == "pdf":
        return render_pdf(document)
    raise InvalidInput(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}", where="format")


MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}
