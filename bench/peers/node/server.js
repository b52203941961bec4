// Peer: Node `ws` broadcast server, as in the ws README ("broadcast to all connected clients").
// Subscribers connect to ws://HOST:WS_PORT/ (any path); spots arrive as JSON lines on a plain TCP
// socket (HOST:INGRESS_PORT) and each line goes out as its own text message. Library defaults.
'use strict';
const net = require('net');
const { WebSocketServer, WebSocket } = require('ws');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const host = arg('--host', '127.0.0.1');
const wsPort = Number(arg('--ws-port'));
const ingressPort = Number(arg('--ingress-port'));

const wss = new WebSocketServer({ host, port: wsPort });

function broadcast(spot) {
  for (const client of wss.clients) {
    if (client.readyState === WebSocket.OPEN) client.send(spot);
  }
}

const ingress = net.createServer((socket) => {
  socket.setEncoding('utf8');
  let pending = '';
  socket.on('data', (chunk) => {
    pending += chunk;
    let newline;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const spot = pending.slice(0, newline).replace(/\r$/, '');
      pending = pending.slice(newline + 1);
      if (spot) broadcast(spot);
    }
  });
  socket.on('error', () => {});
});

let listening = 0;
function ready() {
  if (++listening === 2) console.log(`node ws peer ready ws=${wsPort} ingress=${ingressPort}`);
}
wss.on('listening', ready);
ingress.listen(ingressPort, host, ready);
