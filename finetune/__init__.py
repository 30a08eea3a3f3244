"""llama-md front-end: finetune (thin; imports `assistant`)."""
