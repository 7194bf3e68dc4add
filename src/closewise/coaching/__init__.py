"""Coaching: how top performers' behaviours differ from the rest (`gap`), the checklist that comes out of it
(`checklist`), new-hire ramp against the cohort (`ramp`), opportunity review agendas (`reviews`) and 1:1
coaching plans (`plans`). Pure: Polars frames and plain values in and out; the database is read and written by
the `services.coaching_*` modules.
"""
