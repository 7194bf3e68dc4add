"""Importers: turn CRM exports (Salesforce, HubSpot, any CSV or XLSX) into Closewise records.

`readers` streams rows of a file with their line numbers, `values` turns raw cell text into typed values;
the source-specific importers build on both.
"""
