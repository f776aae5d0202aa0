// Preloaded into the reference server by envd-bench (node --import):
// TCP_NODELAY on every accepted connection, as Go's net package (and so
// envd) sets by default. tests/peer/server.mjs hands h2c connections to its
// HTTP/2 server through a wrapper stream, so those sockets keep Nagle's
// algorithm on; with the client's delayed ACKs every small response then
// waits ~40 ms, and an HTTP/2 benchmark measures that timer instead of
// client or server.
import net from "node:net";

const emit = net.Server.prototype.emit;
net.Server.prototype.emit = function (event, socket, ...rest) {
  if (event === "connection" && socket && typeof socket.setNoDelay === "function") {
    socket.setNoDelay(true);
  }
  return emit.call(this, event, socket, ...rest);
};
