"""Response-time and rate metrics for the committee board, kept in step with the event log."""
