"""The model server (``trenches serve``): FastAPI on uvicorn, ONNX Runtime when the
version has an ONNX form, a request log written off the request path, feedback,
Prometheus metrics, and alias following."""
