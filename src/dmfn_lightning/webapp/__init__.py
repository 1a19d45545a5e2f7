"""The web app: request logic without Gradio (:mod:`.request`) and the Gradio page (:mod:`.page`)."""
