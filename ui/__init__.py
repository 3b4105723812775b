"""The browser app over `qa.Engine` (`qa serve`)."""

import os

# Before Gradio is imported anywhere in the app: no usage analytics leave the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
