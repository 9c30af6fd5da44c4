"""The WRN Lab dashboard: the Streamlit entrypoint (app.py) and the helpers its pages share (lab_ui.py)."""
