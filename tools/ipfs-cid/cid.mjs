// Prints the CID that js-ipfs' UnixFS importer (an IPFS implementation independent of AICPW's
// store) gives a file, with `ipfs add`'s defaults for the CID version asked:
//   node cid.mjs FILE [0|1]
// CIDv1: raw leaves; CIDv0: UnixFS leaves. Both: 256 KiB chunks, balanced DAG of 174 links.
// Blocks are counted and dropped as they come, so memory stays bounded whatever the file size.
import { createReadStream } from 'node:fs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const [path, version = '1'] = process.argv.slice(2)
if (path === undefined) {
  console.error('usage: node cid.mjs FILE [0|1]')
  process.exit(2)
}
const cidVersion = version === '0' ? 0 : 1
// A blockstore that keeps nothing: the CID is all that is wanted.
const discard = {
  async put (cid) { return cid },
  async has () { return false },
  async get () { throw new Error('nothing is kept') }
}
const source = [{ content: createReadStream(path, { highWaterMark: 1 << 20 }) }]
const options = {
  cidVersion,
  rawLeaves: cidVersion === 1,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  reduceSingleLeafToSelf: true,
  wrapWithDirectory: false
}
let root
for await (const entry of importer(source, discard, options)) {
  root = entry.cid
}
console.log(root.toString())
