"""The WRN Lab dashboard: the Streamlit entrypoint (app.py) and what its pages share (see DEVELOPERS.md's layout)."""
