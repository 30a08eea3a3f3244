"""llama-md front-end: ingest (thin; imports `assistant`)."""
