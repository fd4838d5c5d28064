// Parse Mermaid files with Mermaid's own parser: a diagram GitHub cannot
// render fails CI. Usage: node .ci/mermaid-parse.mjs FILE...
import { JSDOM } from "jsdom";
import fs from "fs";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
globalThis.DOMParser = dom.window.DOMParser;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

let failed = 0;
for (const file of process.argv.slice(2)) {
  try {
    const parsed = await mermaid.parse(fs.readFileSync(file, "utf8"));
    console.log(`mermaid: ${file}: ${parsed.diagramType} parses`);
  } catch (error) {
    console.log(`mermaid: ${file}: ${error.message}`);
    failed = 1;
  }
}
process.exit(failed);
