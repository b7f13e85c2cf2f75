"""The review and ingest service: an authenticated reviewer inbox and a record-ingest API next to the Dagster UI.

``create_app(load_settings())`` builds the FastAPI app; ``workflow-service serve`` runs it with uvicorn.
"""
