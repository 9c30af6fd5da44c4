"""Harnesses the dashboard's tests and benches share: server (`streamlit run`), browser (Debian's chromium), apptest (AppTest)."""
