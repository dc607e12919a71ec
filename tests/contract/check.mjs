// check.mjs - the API contract, checked with pinned npm packages (tests/contract/package.json).
//
//   node tests/contract/check.mjs spec SPEC                validate SPEC as an OpenAPI 3 document
//   node tests/contract/check.mjs responses SPEC LOG...    check logged answers against SPEC
//
// FV_CONTRACT_NODE names the folder whose node_modules holds the packages
// (scripts/npm-pinned.sh installs them; default build/contract). LOG files hold one JSON
// object a line, {method, path, status, content_type, body}, as tests/server_harness.c
// writes them under FV_CONTRACT_LOG. Each answer must have its status documented for its
// route and method, and its body must match that response's schema; an error answer to a
// path that no route serves, and a 404 or 405 a route does not document (the router's,
// e.g. on the admin port), must match the Error schema. Exit status 1 on any mismatch.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

const modules = path.resolve(process.env.FV_CONTRACT_NODE || "build/contract", "node_modules");
const require = createRequire(modules + path.sep);
const { Validator } = await import(
  pathToFileURL(path.join(modules, "@seriousme/openapi-schema-validator/index.js")).href
);

async function loadSpec(file) {
  const validator = new Validator();
  const res = await validator.validate(JSON.parse(readFileSync(file, "utf8")));
  if (!res.valid) {
    console.error(`${file}: not a valid OpenAPI ${validator.version || "3"} document:`);
    console.error(JSON.stringify(res.errors, null, 2));
    process.exit(1);
  }
  return validator;
}

// The documented path template that serves a request path: literal segments beat {params}.
function templateOf(spec, requestPath) {
  const segs = requestPath.split("?")[0].split("/");
  let best = null, bestParams = Infinity;
  for (const templ of Object.keys(spec.paths)) {
    const t = templ.split("/");
    if (t.length !== segs.length) continue;
    let params = 0, ok = true;
    for (let i = 0; i < t.length && ok; i++) {
      if (/^\{[^}]+\}$/.test(t[i])) params += segs[i] !== "";
      else ok = t[i] === segs[i];
    }
    if (ok && params < bestParams) { best = templ; bestParams = params; }
  }
  return best;
}

async function checkResponses(file, logs) {
  const validator = await loadSpec(file);
  const spec = validator.resolveRefs();
  const Ajv = require("ajv").default;
  const addFormats = require("ajv-formats").default;
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  const compiled = new Map();
  const compile = (key, schema) => {
    if (!compiled.has(key)) compiled.set(key, ajv.compile(schema));
    return compiled.get(key);
  };
  const errorSchema = spec.components.schemas.Error;
  let checked = 0;
  const failures = [];
  const seen = new Set();
  for (const log of logs) {
    const lines = readFileSync(log, "utf8").split("\n").filter((l) => l.length);
    for (const line of lines) {
      const a = JSON.parse(line);
      const method = a.method === "HEAD" ? "get" : a.method.toLowerCase();
      const templ = templateOf(spec, a.path);
      const op = templ && spec.paths[templ][method];
      const where = `${a.method} ${a.path} -> ${a.status}`;
      let schema, key;
      // The router's own answers, not the route's: 404 for a path the port does not
      // serve (the admin port serves only /healthz, /readyz, /metrics) and 405.
      const routerAnswer = op && (a.status === 404 || a.status === 405) &&
        !op.responses[String(a.status)];
      if (!op || routerAnswer) {
        if (a.status < 400) {
          failures.push(`${where}: no documented operation, yet the answer is not an error`);
          continue;
        }
        schema = errorSchema;
        key = "Error";
      } else {
        const resp = op.responses[String(a.status)] || op.responses.default;
        if (!resp) {
          failures.push(`${where}: status ${a.status} is not documented for ${method} ${templ}`);
          continue;
        }
        const media = a.content_type.split(";")[0].trim().toLowerCase();
        const content = resp.content && resp.content[media];
        if (!content) {
          failures.push(`${where}: ${media} is not documented for ${a.status} of ${method} ${templ}`);
          continue;
        }
        if (!content.schema) continue;
        schema = content.schema;
        key = `${method} ${templ} ${a.status} ${media}`;
      }
      const validate = compile(key, schema);
      checked++;
      if (!validate(JSON.parse(a.body))) {
        const why = ajv.errorsText(validate.errors, { dataVar: "body" });
        const id = `${key}: ${why}`;
        if (!seen.has(id)) {
          seen.add(id);
          failures.push(`${where} (${key}): ${why}\n    body: ${a.body.slice(0, 400)}`);
        }
      }
    }
  }
  for (const f of failures) console.error(`contract: ${f}`);
  console.log(`contract: ${checked} JSON answers (${compiled.size} route/status/type schemas) ` +
    `checked against ${file}, ${failures.length} mismatches`);
  if (failures.length) process.exit(1);
}

const [what, file, ...logs] = process.argv.slice(2);
if (what === "spec" && file) {
  const v = await loadSpec(file);
  console.log(`contract: ${file} is a valid OpenAPI ${v.version} document`);
} else if (what === "responses" && file && logs.length) {
  await checkResponses(file, logs);
} else {
  console.error("usage: check.mjs spec SPEC | check.mjs responses SPEC LOG...");
  process.exit(2);
}
