// Generates gen/*_pb.js from the repository's proto files with protoc and
// protoc-gen-es (target=js). Run by `npm run gen` and by npm's `prepare`.
import { spawnSync } from "node:child_process";
import { mkdirSync, existsSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const protoDir = join(here, "..", "..", "proto");
const outDir = join(here, "gen");
const plugin = join(here, "node_modules", ".bin", "protoc-gen-es");
const protoc = process.env.PROTOC || "protoc";
const includes = ["/usr/include", "/usr/local/include"].filter((d) =>
  existsSync(join(d, "google", "protobuf", "timestamp.proto")),
);

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const args = [
  `--plugin=protoc-gen-es=${plugin}`,
  `--es_out=${outDir}`,
  "--es_opt=target=js,import_extension=js",
  `-I${protoDir}`,
  ...includes.map((d) => `-I${d}`),
  "process.proto",
  "filesystem.proto",
];
const r = spawnSync(protoc, args, { stdio: "inherit" });
if (r.error) {
  console.error(`gen: cannot run ${protoc}: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
