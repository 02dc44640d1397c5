// A local network of bittorrent-dht nodes on 127.0.0.1, driven over
// stdin/stdout with one JSON object per line, for Sower's interop test.
//
//   node btdht_net.mjs COUNT BOOTSTRAP_HOST:PORT...
// prints {"ready":true,"addrs":[...]} once every node is listening and
// bootstrapped, then answers commands:
//   {"cmd":"announce","node":I,"ih":HEX,"port":P}  -> {"ok":true} or {"error":...}
//   {"cmd":"lookup","node":I,"ih":HEX}             -> {"peers":["ip:port",...],"queries":N}
// and exits when stdin closes.
import DHT from 'bittorrent-dht'
import readline from 'node:readline'

const count = Number(process.argv[2])
const bootstrap = process.argv.slice(3)
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')

const nodes = []
for (let i = 0; i < count; i++) {
  // Each node also bootstraps from the first JS node, so the network is
  // one piece whichever side answers first.
  const bs = i === 0 ? bootstrap : bootstrap.concat([`127.0.0.1:${nodes[0].address().port}`])
  const dht = new DHT({ bootstrap: bs })
  dht.on('error', (err) => out({ log: `node ${i}: ${err.message}` }))
  dht.on('warning', () => {})
  await new Promise((resolve) => dht.listen(0, '127.0.0.1', resolve))
  await new Promise((resolve) => dht.once('ready', resolve))
  nodes.push(dht)
}
out({ ready: true, addrs: nodes.map((d) => `127.0.0.1:${d.address().port}`) })

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', (line) => {
  let c
  try { c = JSON.parse(line) } catch (e) { out({ error: `bad command: ${e.message}` }); return }
  const dht = nodes[c.node]
  if (!dht) { out({ error: `no node ${c.node}` }); return }
  if (c.cmd === 'announce') {
    dht.announce(c.ih, c.port, (err) => out(err ? { error: err.message } : { ok: true }))
  } else if (c.cmd === 'lookup') {
    const peers = new Set()
    const onPeer = (peer, ih) => { if (ih.toString('hex') === c.ih) peers.add(`${peer.host}:${peer.port}`) }
    dht.on('peer', onPeer)
    dht.lookup(c.ih, (err, n) => {
      dht.removeListener('peer', onPeer)
      out(err ? { error: err.message } : { peers: [...peers], queries: n })
    })
  } else {
    out({ error: `unknown command ${c.cmd}` })
  }
})
rl.on('close', () => { for (const d of nodes) d.destroy(); process.exit(0) })
