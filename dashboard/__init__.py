"""The WRN Lab dashboard: the Streamlit entrypoint (app.py) and what its pages share (lab_ui, widgets, run_form, once)."""
