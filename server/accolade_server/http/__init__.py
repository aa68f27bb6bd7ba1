"""The HTTP face: one ASGI app on the `http_listen` listener, in the gRPC server's process
and event loop. Parts (the Connect API, pictures, profile pages, the console) add routes to
it in `app.build_http_app`."""
