"""Drafting data to quota: ask a teacher model for conversations aimed at a dataset's gaps."""
