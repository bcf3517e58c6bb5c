// verify.js checks, in the browser, that an audit event is in a Trail log.
// It uses WebCrypto alone (SHA-256 and Ed25519), so it needs a secure
// context: HTTPS, or http://localhost.
//
// verifyEvent checks, in order:
//
//   key         the verifier key is a signed-note Ed25519 key
//               (name+hash+base64 key) whose hash matches its name and key;
//   checkpoint  the checkpoint is a signed note (https://c2sp.org/signed-note)
//               whose body is a tlog-checkpoint (https://c2sp.org/tlog-checkpoint);
//   signature   one of its signatures is by that key, and it is valid
//               (signatures by other keys are ignored);
//   proof       the inclusion proof is for the checkpoint's tree and for the
//               event's seq, with as many hashes as that position needs;
//   leaf        the SHA-256 leaf hash of the event's RFC 8785 canonical JSON,
//               run up the RFC 6962 audit path, gives the checkpoint's root,
//               as tlog.CheckRecord (golang.org/x/mod/sumdb/tlog) does.

// Failure is a check that did not pass: the step and a sentence saying why.
class Failure extends Error {
  constructor(step, reason) {
    super(reason);
    this.step = step;
  }
}

const encoder = new TextEncoder();

// canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) text of
// value, a parsed JSON value: object keys sorted by UTF-16 code units,
// numbers and strings written as JSON.stringify writes them. It throws a
// TypeError for a value JSON cannot hold, such as NaN or undefined.
export function canonicalize(value) {
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`${value} is not a JSON number`);
      return JSON.stringify(value);
    case "object":
      if (value === null) return "null";
      if (Array.isArray(value)) return "[" + value.map(canonicalize).join(",") + "]";
      return "{" + Object.keys(value).sort()
        .map((k) => JSON.stringify(k) + ":" + canonicalize(value[k]))
        .join(",") + "}";
  }
  throw new TypeError(`a ${typeof value} is not a JSON value`);
}

// parseVerifierKey parses a signed-note verifier key, name+hash+base64(0x01
// || Ed25519 public key), and checks that hash is the key hash of name and
// key. Surrounding white space is ignored. It resolves to {name, keyHash
// (8 lower-case hex digits), publicKey (32 bytes)}, and rejects with an
// Error saying what is wrong.
export async function parseVerifierKey(text) {
  const malformed = (why) => new Failure("key", `the verifier key is malformed: ${why}`);
  if (typeof text !== "string") throw malformed("it is not text");
  const [name, hash16, key64] = cut(text.trim(), "+", 2);
  if (!validName(name)) throw malformed("it does not start with a key name and +");
  if (!/^[0-9a-fA-F]{8}$/.test(hash16)) throw malformed("its key hash is not 8 hex digits");
  const key = fromBase64(key64);
  if (key === null || key.length === 0) throw malformed("its key is not base64");
  if (key[0] !== 1) throw new Failure("key", "the verifier key is not an Ed25519 key");
  if (key.length !== 33) throw malformed(`its Ed25519 key is ${key.length - 1} bytes, not 32`);
  const keyHash = hex((await keyHashOf(name, key)).subarray(0, 4));
  if (keyHash !== hash16.toLowerCase()) {
    throw new Failure("key", "the verifier key's hash does not match its name and key: the key was altered");
  }
  return { name, keyHash, publicKey: key.slice(1) };
}

// parseCheckpoint parses a signed checkpoint: a tlog-checkpoint body
// (origin, tree size, base64 root hash, optional extension lines), a blank
// line, and signature lines "— name base64(key hash || signature)". It
// checks the syntax only, not the signatures. It returns {origin, treeSize,
// root (base64), rootHash (32 bytes), extensions, body (the signed text),
// signatures: [{name, keyHash (hex), signature (bytes)}]}, and throws an
// Error saying what is wrong.
export function parseCheckpoint(noteText) {
  const malformed = (why) => new Failure("checkpoint", `the checkpoint is malformed: ${why}`);
  if (typeof noteText !== "string") throw malformed("it is not text");
  if (noteText === "") throw malformed("it is empty");
  if (!noteText.isWellFormed() || /[\x00-\x09\x0b-\x1f]/.test(noteText)) {
    throw malformed("it holds control characters");
  }
  const split = noteText.lastIndexOf("\n\n");
  if (split < 0) throw malformed("it has no blank line before its signatures");
  const body = noteText.slice(0, split + 1);
  const sigText = noteText.slice(split + 2);
  if (sigText === "" || !sigText.endsWith("\n")) {
    throw malformed("its signature lines do not end in a newline");
  }

  const signatures = [];
  for (const line of sigText.slice(0, -1).split("\n")) {
    if (!line.startsWith("\u2014 ")) {
      throw malformed("a signature line does not start with an em dash and a space");
    }
    const [name, b64] = cut(line.slice(2), " ", 1);
    const sig = fromBase64(b64);
    if (!validName(name) || sig === null || sig.length < 5) {
      throw malformed("a signature line is not a key name and a base64 signature");
    }
    if (signatures.length === 100) throw malformed("it has more than 100 signatures");
    signatures.push({ name, keyHash: hex(sig.subarray(0, 4)), signature: sig.slice(4) });
  }

  const lines = body.slice(0, -1).split("\n");
  if (lines.length < 3) throw malformed("its body is not an origin, a tree size and a root hash");
  if (lines.some((l) => l === "" || /[\x00-\x1f\x7f-\x9f]/.test(l))) {
    throw malformed("its body has an empty line or a control character");
  }
  const [origin, size, root, ...extensions] = lines;
  if (!/^(0|[1-9][0-9]*)$/.test(size) || !Number.isSafeInteger(Number(size))) {
    throw malformed(`its tree size ${JSON.stringify(size)} is not a decimal number`);
  }
  const rootHash = fromBase64(root);
  if (rootHash === null || rootHash.length !== 32 || toBase64(rootHash) !== root) {
    throw malformed("its root hash is not 32 bytes of base64");
  }
  return { origin, treeSize: Number(size), root, rootHash, extensions, body, signatures };
}

// verifyEvent checks that event is in the log whose checkpoints verifierKey
// signs. event is the stored event, as JSON text or parsed; proof is
// {seq, tree_size, hashes: [base64, ...]}; checkpoint is the signed note
// text. It resolves to {ok: true, seq, treeSize, root, origin, signer,
// keyHash}, or to {ok: false, step, reason}, where step is the first check
// that failed ("key", "checkpoint", "signature", "proof" or "leaf"; see the
// top of this file) and reason a sentence. It never rejects.
export async function verifyEvent(input) {
  let step = "key";
  try {
    const { event, proof, checkpoint, verifierKey } = input ?? {};
    if (!globalThis.crypto?.subtle) throw new Failure("key", "this page has no WebCrypto; open it over HTTPS");
    const key = await parseVerifierKey(verifierKey);
    const signer = `${key.name}+${key.keyHash}`;
    let cryptoKey;
    try {
      cryptoKey = await crypto.subtle.importKey("raw", key.publicKey, { name: "Ed25519" }, false, ["verify"]);
    } catch {
      throw new Failure("key", "the verifier key is not a valid Ed25519 public key");
    }

    step = "checkpoint";
    const cp = parseCheckpoint(checkpoint);

    step = "signature";
    // As golang.org/x/mod/sumdb/note does, the first signature by the key
    // counts, and must be valid.
    const sig = cp.signatures.find((s) => s.name === key.name && s.keyHash === key.keyHash);
    if (!sig) throw new Failure("signature", `the checkpoint is not signed by ${signer}`);
    const valid = sig.signature.length === 64 &&
      await crypto.subtle.verify({ name: "Ed25519" }, cryptoKey, sig.signature, encoder.encode(cp.body));
    if (!valid) {
      throw new Failure("signature",
        `the signature by ${signer} does not match the checkpoint: the checkpoint or its signature was altered`);
    }

    step = "proof";
    const { seq, treeSize, hashes } = parseProof(proof);
    if (treeSize !== cp.treeSize) {
      throw new Failure("proof",
        `the proof is for a tree of ${treeSize} events, but the checkpoint is for ${cp.treeSize}`);
    }
    if (seq >= treeSize) throw new Failure("proof", `event ${seq} is not in a tree of ${treeSize} events`);
    const leftSibling = auditPath(seq, treeSize);
    if (hashes.length !== leftSibling.length) {
      throw new Failure("proof",
        `the proof has ${hashes.length} hashes, but event ${seq} in a tree of ${treeSize} needs ${leftSibling.length}`);
    }

    step = "leaf";
    const ev = parseEvent(event);
    if (!Number.isSafeInteger(ev.seq)) throw new Failure("leaf", "the event has no seq");
    if (ev.seq !== seq) throw new Failure("proof", `the proof is for event ${seq}, but the event has seq ${ev.seq}`);
    let leaf;
    try {
      leaf = canonicalize(ev);
    } catch (err) {
      throw new Failure("leaf", `the event cannot be canonicalized: ${err.message}`);
    }
    let h = await sha256(concat([0], encoder.encode(leaf)));
    for (const [i, left] of leftSibling.entries()) {
      h = await sha256(left ? concat([1], hashes[i], h) : concat([1], h, hashes[i]));
    }
    if (toBase64(h) !== cp.root) {
      throw new Failure("leaf",
        "the event's hash does not lead to the checkpoint's root: the event or the proof was altered");
    }
    return { ok: true, seq, treeSize, root: cp.root, origin: cp.origin, signer: key.name, keyHash: key.keyHash };
  } catch (err) {
    if (err instanceof Failure) return { ok: false, step: err.step, reason: err.message };
    return { ok: false, step, reason: `the check failed unexpectedly: ${err?.message ?? err}` };
  }
}

// parsePolicy parses a witness policy in C2SP tlog-policy syntax
// (https://c2sp.org/tlog-policy): "log VKEY [URL]", "witness NAME VKEY
// [URL]", "group NAME K|any|all MEMBER...", "quorum NAME|none", and "#"
// comments, as Trail's policy package reads it. Witness keys must be
// Ed25519 cosignature/v1 keys (type 0x04) whose hash matches their name and
// key. It resolves to {witnesses: [{name, keyName, keyHash, publicKey}],
// quorum} where quorum is null for "quorum none", or a node: {witness:
// name} or {k, members: [node]}; it rejects with a Failure naming the line.
export async function parsePolicy(text) {
  const lineErr = (n, why) => new Failure("witnesses", `the witness policy is malformed: line ${n}: ${why}`);
  if (typeof text !== "string") throw new Failure("witnesses", "the witness policy is not text");
  const keywords = new Set(["log", "witness", "group", "quorum", "any", "all", "none"]);
  const nodes = new Map();
  const witnesses = [];
  let quorumLine = 0;
  let quorumName = "";
  const lines = text.split("\n");
  for (const [i, raw] of lines.entries()) {
    const n = i + 1;
    const f = raw.replace(/#.*/, "").split(/[ \t\r\v\f]+/).filter((w) => w !== "");
    if (f.length === 0) continue;
    const newName = (name) => {
      if (keywords.has(name)) throw lineErr(n, `name "${name}" is a keyword`);
      if (nodes.has(name)) throw lineErr(n, `name "${name}" is already defined`);
    };
    switch (f[0]) {
      case "log":
        if (f.length < 2 || f.length > 3) throw lineErr(n, "want log VKEY [URL]");
        break;
      case "witness": {
        if (f.length < 3 || f.length > 4) throw lineErr(n, "want witness NAME VKEY [URL]");
        newName(f[1]);
        const [keyName, hash16, key64] = cut(f[2], "+", 2);
        const key = fromBase64(key64);
        if (!validName(keyName) || !/^[0-9a-fA-F]{8}$/.test(hash16) || key === null || key.length === 0) {
          throw lineErr(n, `witness ${f[1]}: its key is not a signed-note verifier key`);
        }
        if (key[0] !== 4 || key.length !== 33) {
          throw lineErr(n, `witness ${f[1]}: its key is not an Ed25519 cosignature/v1 key (type 0x04)`);
        }
        const keyHash = hex((await keyHashOf(keyName, key)).subarray(0, 4));
        if (keyHash !== hash16.toLowerCase()) throw lineErr(n, `witness ${f[1]}: its key hash does not match its name and key`);
        const w = { name: f[1], keyName, keyHash, publicKey: key.slice(1) };
        witnesses.push(w);
        nodes.set(w.name, { witness: w.name });
        break;
      }
      case "group": {
        if (f.length < 4) throw lineErr(n, "want group NAME K|any|all MEMBER...");
        newName(f[1]);
        const members = [];
        for (const m of f.slice(3)) {
          const node = nodes.get(m);
          if (!node) throw lineErr(n, `group ${f[1]}: unknown member "${m}"`);
          if (members.includes(node)) throw lineErr(n, `group ${f[1]}: member "${m}" listed twice`);
          members.push(node);
        }
        let k;
        if (f[2] === "any") k = 1;
        else if (f[2] === "all") k = members.length;
        else if (/^[0-9]+$/.test(f[2]) && Number(f[2]) >= 1 && Number(f[2]) <= members.length) k = Number(f[2]);
        else throw lineErr(n, `group ${f[1]}: threshold "${f[2]}" is not 1 to ${members.length}, any or all`);
        nodes.set(f[1], { group: f[1], k, members });
        break;
      }
      case "quorum":
        if (f.length !== 2) throw lineErr(n, "want quorum NAME or quorum none");
        if (quorumLine) throw lineErr(n, `second quorum (the first is on line ${quorumLine})`);
        quorumLine = n;
        quorumName = f[1];
        break;
      default:
        throw lineErr(n, `unknown keyword "${f[0]}"`);
    }
  }
  if (!quorumLine) throw new Failure("witnesses", "the witness policy is malformed: it has no quorum line");
  if (quorumName === "none") return { witnesses, quorum: null };
  const quorum = nodes.get(quorumName);
  if (!quorum) throw lineErr(quorumLine, `quorum "${quorumName}" is not a witness or group of the policy`);
  return { witnesses, quorum };
}

// describeQuorum says the quorum for people, as Trail's policy package
// does: "none", "w1", "2 of w1, w2", nested groups in parentheses, up to
// 100 groups spelled out and the rest by name (groups may share members,
// so a short policy can nest exponentially many paths).
function describeQuorum(node, top = true, budget = { left: 100 }) {
  if (node === null) return "none";
  if (node.witness !== undefined) return node.witness;
  budget.left--;
  if (budget.left < 0 && !top) return node.group;
  const s = `${node.k} of ${node.members.map((m) => describeQuorum(m, false, budget)).join(", ")}`;
  return top ? s : `(${s})`;
}

// satisfied evaluates the quorum, each group once.
function satisfied(node, cosigners, memo = new Map()) {
  if (node === null) return true;
  if (node.witness !== undefined) return cosigners.has(node.witness);
  if (!memo.has(node)) {
    memo.set(node, node.members.filter((m) => satisfied(m, cosigners, memo)).length >= node.k);
  }
  return memo.get(node);
}

// verifyWitnesses checks, with WebCrypto, the witnesses' cosignatures
// (C2SP tlog-cosignature, cosignature/v1: key hash || 8-byte big-endian
// time || Ed25519 signature over "cosignature/v1\ntime T\n" and the
// checkpoint body) that checkpoint, a signed note, carries, against policy,
// a tlog-policy text, and evaluates its quorum. Bad signatures and
// signatures by keys the policy does not name are ignored. It does not
// check the log's own signature: verifyEvent does. It resolves to {ok:
// true, met, quorum (described), cosigners: [{name, time}], missing:
// [name], total}, names sorted and times in ISO 8601 (UTC, whole seconds),
// or to {ok: false, step: "witnesses", reason}. It never rejects.
export async function verifyWitnesses(input) {
  try {
    const { checkpoint, policy } = input ?? {};
    if (!globalThis.crypto?.subtle) throw new Failure("witnesses", "this page has no WebCrypto; open it over HTTPS");
    const p = await parsePolicy(policy);
    const cp = parseCheckpoint(checkpoint);
    const times = new Map();
    for (const w of p.witnesses) {
      let cryptoKey = null;
      for (const s of cp.signatures) {
        if (s.name !== w.keyName || s.keyHash !== w.keyHash || s.signature.length !== 72) continue;
        const ts = new DataView(s.signature.buffer, s.signature.byteOffset, 8).getBigUint64(0);
        const msg = encoder.encode(`cosignature/v1\ntime ${ts}\n` + cp.body);
        try {
          cryptoKey ??= await crypto.subtle.importKey("raw", w.publicKey, { name: "Ed25519" }, false, ["verify"]);
        } catch {
          break; // not a valid Ed25519 key: it verifies nothing
        }
        if (await crypto.subtle.verify({ name: "Ed25519" }, cryptoKey, s.signature.slice(8), msg)) {
          const ms = Number(ts) * 1000;
          times.set(w.name, Number.isSafeInteger(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString().replace(".000Z", "Z") : String(ts));
          break;
        }
      }
    }
    const cosigners = [...times.keys()].sort().map((name) => ({ name, time: times.get(name) }));
    const missing = p.witnesses.map((w) => w.name).filter((name) => !times.has(name)).sort();
    return {
      ok: true,
      met: satisfied(p.quorum, new Set(times.keys())),
      quorum: describeQuorum(p.quorum),
      cosigners,
      missing,
      total: p.witnesses.length,
    };
  } catch (err) {
    if (err instanceof Failure) return { ok: false, step: "witnesses", reason: err.message };
    return { ok: false, step: "witnesses", reason: `the check failed unexpectedly: ${err?.message ?? err}` };
  }
}

// parseProof checks the shape of an inclusion proof and decodes its hashes.
function parseProof(proof) {
  const malformed = (why) => new Failure("proof", `the proof is malformed: ${why}`);
  if (typeof proof !== "object" || proof === null) throw malformed("it is missing");
  const { seq, tree_size: treeSize, hashes } = proof;
  if (!Number.isSafeInteger(seq) || seq < 0) throw malformed("its seq is not a non-negative integer");
  if (!Number.isSafeInteger(treeSize) || treeSize < 0) throw malformed("its tree_size is not a non-negative integer");
  if (!Array.isArray(hashes)) throw malformed("its hashes are not a list");
  const decoded = hashes.map((b64) => fromBase64(b64));
  const bad = decoded.findIndex((h) => h === null || h.length !== 32);
  if (bad >= 0) throw malformed(`hash ${bad} is not 32 bytes of base64`);
  return { seq, treeSize, hashes: decoded };
}

// parseEvent returns the event as a parsed JSON object.
function parseEvent(event) {
  let ev = event;
  if (typeof event === "string") {
    try {
      ev = JSON.parse(event);
    } catch {
      throw new Failure("leaf", "the event is not valid JSON");
    }
  }
  if (typeof ev !== "object" || ev === null || Array.isArray(ev)) {
    throw new Failure("leaf", "the event is not a JSON object");
  }
  return ev;
}

// auditPath returns, for each hash of the proof that leaf n is in a tree of
// size t, whether that hash is the left sibling of the node being rebuilt.
// The proof lists hashes from the leaf up, as tlog.ProveRecord returns them.
function auditPath(n, t) {
  const left = [];
  let lo = 0;
  let hi = t;
  while (hi - lo > 1) {
    let k = 1; // the largest power of two less than hi-lo
    while (k * 2 < hi - lo) k *= 2;
    if (n < lo + k) {
      left.push(false);
      hi = lo + k;
    } else {
      left.push(true);
      lo += k;
    }
  }
  return left.reverse();
}

// keyHashOf returns SHA-256(name || "\n" || key), whose first 4 bytes are
// the signed-note key hash.
function keyHashOf(name, key) {
  return sha256(concat(encoder.encode(name + "\n"), key));
}

async function sha256(data) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

// cut splits s at the first n occurrences of sep, giving n+1 parts; missing
// parts are "".
function cut(s, sep, n) {
  const parts = [];
  for (let i = 0; i < n; i++) {
    const j = s.indexOf(sep);
    if (j < 0) break;
    parts.push(s.slice(0, j));
    s = s.slice(j + sep.length);
  }
  parts.push(s);
  while (parts.length <= n) parts.push("");
  return parts;
}

// spaceOrPlus matches + and the characters Go's unicode.IsSpace calls space.
const spaceOrPlus = /[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000+]/;

// validName reports whether name can name a signed-note key: non-empty
// text with no white space and no +.
function validName(name) {
  return name !== "" && name.isWellFormed() && !spaceOrPlus.test(name);
}

const base64Text = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

// fromBase64 decodes padded standard base64, or returns null.
function fromBase64(s) {
  if (typeof s !== "string" || !base64Text.test(s)) return null;
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

function toBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
