"""Incidents: intake, the event-sourced lifecycle, duplicates, listing and views."""
