"""gRPC servicers: proto in, domain call, proto out. No SQL, no rule logic."""
