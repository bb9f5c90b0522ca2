// node-http: Node's http module answering the same bytes as keel's hello.
// Usage: node http.js PORT [WORKERS]  (WORKERS > 1: cluster, one process per worker)
'use strict';
const cluster = require('cluster');
const http = require('http');
const port = Number(process.argv[2] || 8080);
const workers = Number(process.argv[3] || 1);

if (workers > 1 && cluster.isPrimary) {
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on('listening', () => {
      if (++ready === workers) console.log(`listening on http://127.0.0.1:${port}`);
    });
  }
  process.on('SIGTERM', () => {
    for (const id in cluster.workers) cluster.workers[id].kill('SIGTERM');
    process.exit(0);
  });
} else {
  const plaintext = Buffer.from('Hello, World!');
  const json = Buffer.from('{"message":"Hello, World!"}');
  const server = http.createServer((req, res) => {
    if (req.url === '/plaintext') {
      res.writeHead(200, {'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': plaintext.length});
      res.end(plaintext);
    } else if (req.url === '/json') {
      res.writeHead(200, {'Content-Type': 'application/json', 'Content-Length': json.length});
      res.end(json);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  server.keepAliveTimeout = 60000;
  server.listen(port, '127.0.0.1', () => {
    if (workers <= 1) console.log(`listening on http://127.0.0.1:${port}`);
  });
  process.on('SIGTERM', () => process.exit(0));
}
