"""Proposals (issue 11): a personalised executive summary built from the deal's record, its quality checks,
proposal documents (HTML, DOCX, PDF), the differentiation library and the prospecting plan.

Everything here is pure: facts in (dataclasses and Polars frames), text, documents and frames out. The
database reads live in `db/proposals.py` and the use cases in `services/proposals.py`.
"""
