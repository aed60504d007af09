"""Streamlit panels of the dashboard. app.py composes them; gapdemo/ does the work."""
