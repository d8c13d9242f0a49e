"""cgn-service client SDK."""
