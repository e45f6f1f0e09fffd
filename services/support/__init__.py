"""The support chatbot: intents, out-of-scope fallback, knowledge-base answers, human hand-off."""
