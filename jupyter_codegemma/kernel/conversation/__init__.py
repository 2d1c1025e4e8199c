"""`%codegemma explain | fix | chat` and `%%codegemma --explain | --chat`: commands.py runs them,
prompts.py gathers what the model is shown (the last failure, a cell, the chat so far) and builds
the prompts, limits.py keeps all of it within the model's context and free of secrets."""
