"""llama-md front-end: ui (thin; imports `assistant`)."""
