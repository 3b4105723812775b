"""The ways in, thin faces over qa.engine: the command line, the shared service checks of the
HTTP API and MCP, the MCP server. (The Gradio app is qa.ui.) May import anything."""
