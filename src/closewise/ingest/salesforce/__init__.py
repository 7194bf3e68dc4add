"""Salesforce Data Export (weekly export folder or zip) and the Excel-style layout."""

from closewise.ingest.salesforce.importer import import_salesforce_export

__all__ = ["import_salesforce_export"]
