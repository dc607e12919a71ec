/* app.js - the page: two photos, their faces and aligned crops (/v1/align), the
 * comparison (/v1/verify), a threshold slider that re-decides without asking the
 * server again, and the embeddings (/v1/embed) as a download. No inline code, no
 * storage: an API key lives in `apiKey` only, for as long as the page is open. */
'use strict';

let apiKey = null;

const sides = {
  1: { file: null, faces: [], chosen: -1, picked: false, seq: 0 },
  2: { file: null, faces: [], chosen: -1, picked: false, seq: 0 },
};
let verifySeq = 0;
let lastResult = null;

const $ = (sel, root = document) => root.querySelector(sel);

/* A readable sentence for an error answer; the server's message is the detail. */
function describe(error, what) {
  const code = error && error.code;
  const detail = error && error.message ? ` (${error.message})` : '';
  switch (code) {
    case 'no_face': return `No face found in ${what}.`;
    case 'image_too_large':
    case 'body_too_large': return `${what} is too large${detail}.`;
    case 'unsupported_image':
    case 'unsupported_media_type': return `${what} is in a format the server does not read (JPEG, PNG, WebP, HEIC/HEIF, AVIF)${detail}.`;
    case 'bad_image': return `${what} is not a readable image${detail}.`;
    case 'unauthorized': return 'This server needs an API key: type it above.';
    case 'busy': return 'The server is busy: try again in a moment.';
    case 'no_data_root': return 'This server was started without --data-root: it cannot read evaluation files.';
    case 'forbidden_path': return `${what}: the path must stay inside the server's --data-root${detail}.`;
    default: return `${what}: ${error && error.message ? error.message : 'the request failed'}`;
  }
}

class ApiError extends Error {
  constructor(status, error) {
    super(error && error.message ? error.message : `HTTP ${status}`);
    this.status = status;
    this.error = error;
  }
}

/* Sends a request to path with the key, if one was given (body: FormData, or
 * an object sent as JSON; none for a GET); the parsed JSON answer, or an
 * ApiError. A 401 shows the key box. */
async function call(method, path, body) {
  const headers = {};
  if (apiKey) headers['X-API-Key'] = apiKey;
  if (body && !(body instanceof FormData)) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, body, headers });
  } catch (e) {
    throw new ApiError(0, { code: 'network', message: 'the server cannot be reached' });
  }
  let answer = null;
  try { answer = await res.json(); } catch (e) { answer = null; }
  if (res.status === 401) showKeyBox();
  if (!res.ok) throw new ApiError(res.status, answer && answer.error ? answer.error : { message: `HTTP ${res.status}` });
  return answer;
}

const post = (path, form) => call('POST', path, form);

function showKeyBox() {
  $('#key-box').hidden = false;
}

/* ---- one photo: its faces, drawn, and their crops ---- */

function drawFaces(n) {
  const side = sides[n];
  const root = $(`#side-${n}`);
  const canvas = $('canvas', root);
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const unit = Math.max(2, Math.max(canvas.width, canvas.height) / 300);
  side.faces.forEach((f, i) => {
    const [x1, y1, x2, y2] = f.box;
    ctx.lineWidth = unit;
    ctx.strokeStyle = i === side.chosen ? '#1f6feb' : '#f79009';
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    ctx.fillStyle = '#12b76a';
    for (const p of Object.values(f.landmarks || {})) {
      ctx.beginPath();
      ctx.arc(p[0], p[1], unit * 1.5, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.fillStyle = ctx.strokeStyle;
    ctx.font = `${Math.round(unit * 8)}px sans-serif`;
    ctx.fillText(String(i), x1 + unit, Math.max(y1 - unit * 2, unit * 8));
  });
}

function showCrops(n) {
  const side = sides[n];
  const box = $(`#side-${n} .crops`);
  box.replaceChildren();
  side.faces.forEach((f, i) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'crop' + (i === side.chosen ? ' chosen' : '');
    b.title = `face ${i}, detector score ${f.score.toFixed(3)}: compare this one`;
    const img = document.createElement('img');
    img.alt = `aligned face ${i}`;
    img.width = f.crop_width;
    img.height = f.crop_height;
    img.src = `data:image/png;base64,${f.crop_png}`;
    const label = document.createElement('span');
    label.textContent = `face ${i}`;
    b.append(img, label);
    b.addEventListener('click', () => {
      side.chosen = i;
      side.picked = true;
      refreshSide(n);
      verify();
    });
    box.append(b);
  });
}

function refreshSide(n) {
  drawFaces(n);
  showCrops(n);
}

/* An error (the default) or a note (info) under photo n. */
function setMessage(n, text, info = false) {
  const m = $(`#side-${n} .message`);
  m.textContent = text;
  m.classList.toggle('info', info);
}

async function loadPhoto(n, file) {
  const side = sides[n];
  const root = $(`#side-${n}`);
  const seq = ++side.seq;
  Object.assign(side, { file, faces: [], chosen: -1, picked: false });
  lastResult = null;
  $('#result').hidden = true;
  $('#error').textContent = '';
  setMessage(n, 'Looking for faces…', true);
  const img = $('.stage img', root);
  if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  $('.stage', root).hidden = false;
  $('.crops', root).replaceChildren();
  const canvas = $('canvas', root);
  canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
  const form = new FormData();
  form.append('image', file);
  try {
    const answer = await post('/v1/align', form);
    if (seq !== side.seq) return;
    canvas.width = answer.width;
    canvas.height = answer.height;
    side.faces = answer.faces;
    side.chosen = 0;
    setMessage(n, answer.faces.length > 1
      ? `${answer.faces.length} faces: click a crop to choose the one to compare.` : '', true);
    refreshSide(n);
    verify();
  } catch (e) {
    if (seq !== side.seq) return;
    setMessage(n, describe(e.error, `photo ${n}`));
  }
}

/* ---- the comparison ---- */

function sameBox(a, b) {
  return a && b && a.length === 4 && a.every((v, i) => v === b[i]);
}

function decide() {
  if (!lastResult) return;
  const t = Number($('#threshold').value);
  $('#threshold-value').textContent = t.toFixed(3);
  const match = lastResult.score >= t;
  const d = $('#decision');
  d.textContent = match ? 'Same person' : 'Different people';
  d.className = 'decision ' + (match ? 'match' : 'no-match');
  d.dataset.match = String(match);
}

async function verify() {
  const a = sides[1], b = sides[2];
  if (!a.faces.length || !b.faces.length) return;
  const seq = ++verifySeq;
  const form = new FormData();
  form.append('image1', a.file);
  form.append('image2', b.file);
  /* Without a choice the server picks: image1 by its policy, image2 searched. */
  if (a.picked) form.append('face1', String(a.chosen));
  if (b.picked) form.append('face2', String(b.chosen));
  $('#error').textContent = '';
  try {
    const r = await post('/v1/verify', form);
    if (seq !== verifySeq) return;
    lastResult = r;
    /* Show which faces the server compared. */
    for (const [n, face] of [[1, r.face1], [2, r.face2]]) {
      const i = sides[n].faces.findIndex((f) => sameBox(f.box, face && face.box));
      if (i >= 0 && i !== sides[n].chosen) {
        sides[n].chosen = i;
        refreshSide(n);
      }
    }
    $('#score').textContent = String(r.score);
    const slider = $('#threshold');
    slider.value = String(r.threshold);
    const t = r.timings_ms || {};
    $('#timings').textContent = Object.entries(t).map(([k, v]) => `${k} ${v} ms`).join(', ');
    $('#result').hidden = false;
    decide();
  } catch (e) {
    if (seq !== verifySeq) return;
    $('#result').hidden = true;
    $('#error').textContent = describe(e.error, 'the comparison');
  }
}

async function downloadEmbeddings() {
  const form = new FormData();
  for (const n of [1, 2]) if (sides[n].file) form.append('images', sides[n].file);
  try {
    const answer = await post('/v1/embed', form);
    const blob = new Blob([JSON.stringify(answer, null, 1)], { type: 'application/json' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'embeddings.json';
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  } catch (e) {
    $('#error').textContent = describe(e.error, 'the embeddings');
  }
}

/* ---- an evaluation: start, poll, report ---- */

let evaluation = null; /* the job being watched: {id, self, timer} */

function percent(x) {
  return `${(100 * x).toFixed(2)}%`;
}

function showReport(report, rocUrl) {
  const rows = $('#eval-rows');
  rows.replaceChildren();
  for (const run of report.runs || []) {
    const tr = document.createElement('tr');
    const tar = (run.tar_at_far || []).map((t) => `${percent(t.tar)} at ${t.far}`).join(', ');
    const cells = [run.label, run.pca_dim ? String(run.pca_dim) : 'none',
      `${percent(run.mean_accuracy)} ± ${percent(run.std_accuracy)}`,
      run.auc.toFixed(5), percent(run.eer), tar];
    for (const text of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    rows.append(tr);
  }
  const failures = (report.detection_failures || []).length;
  $('#eval-summary').textContent = `${report.pairs} pairs of ${report.images} images in ` +
    `${report.folds} folds; ${failures} image${failures === 1 ? '' : 's'} without a detected face.`;
  $('#eval-report').hidden = false;
  /* The ROC is fetched like every API call (it may need the key) and shown from a blob: URL. */
  const headers = apiKey ? { 'X-API-Key': apiKey } : {};
  fetch(rocUrl, { headers })
    .then((res) => (res.ok ? res.blob() : Promise.reject(new Error(`HTTP ${res.status}`))))
    .then((blob) => {
      const img = $('#eval-roc');
      if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(blob);
    })
    .catch((e) => { $('#eval-error').textContent = `The ROC curve could not be loaded: ${e.message}`; });
}

function evaluationDone() {
  if (evaluation && evaluation.timer) clearTimeout(evaluation.timer);
  evaluation = null;
  $('#eval-start').disabled = false;
  $('#eval-cancel').hidden = true;
}

async function pollEvaluation() {
  if (!evaluation) return;
  const job = evaluation;
  try {
    const e = await call('GET', job.self);
    if (job !== evaluation) return;
    const p = e.progress || {};
    const bar = $('#eval-progress');
    bar.hidden = false;
    bar.max = Math.max(1, p.total || 0);
    bar.value = p.done || 0;
    $('#eval-status').textContent = `${e.status}: ${p.done || 0} of ${p.total || '?'} images`;
    if (e.status === 'done') {
      evaluationDone();
      showReport(e.report, e.links.roc);
    } else if (e.status === 'failed') {
      evaluationDone();
      $('#eval-error').textContent = describe(e.error, 'the evaluation');
    } else {
      job.timer = setTimeout(pollEvaluation, 1000);
    }
  } catch (err) {
    if (job !== evaluation) return;
    evaluationDone();
    $('#eval-error').textContent = describe(err.error, 'the evaluation');
  }
}

async function startEvaluation() {
  $('#eval-error').textContent = '';
  $('#eval-report').hidden = true;
  const body = { images: $('#eval-images').value.trim(), pairs: $('#eval-pairs').value.trim() };
  const pca = $('#eval-pca').value;
  if (pca !== '') body.pca_dim = Number(pca);
  $('#eval-start').disabled = true;
  try {
    const e = await call('POST', '/v1/evaluations', body);
    evaluation = { id: e.id, self: e.links.self, timer: null };
    $('#eval-cancel').hidden = false;
    $('#eval-status').textContent = `${e.status}`;
    pollEvaluation();
  } catch (err) {
    evaluationDone();
    $('#eval-error').textContent = describe(err.error, 'the evaluation');
  }
}

async function cancelEvaluation() {
  if (!evaluation) return;
  try {
    await call('POST', `${evaluation.self}/cancel`);
  } catch (err) {
    $('#eval-error').textContent = describe(err.error, 'the cancel');
  }
}

/* ---- wiring ---- */

function wireSide(n) {
  const input = $(`#file-${n}`);
  const drop = $(`#drop-${n}`);
  input.addEventListener('change', () => {
    if (input.files && input.files[0]) loadPhoto(n, input.files[0]);
  });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
    if (f) loadPhoto(n, f);
  });
}

async function checkKey() {
  /* /v1/models needs a key exactly when the API does. */
  const res = await fetch('/v1/models', { headers: apiKey ? { 'X-API-Key': apiKey } : {} });
  if (res.status === 401) showKeyBox();
  return res.ok;
}

document.addEventListener('DOMContentLoaded', () => {
  wireSide(1);
  wireSide(2);
  $('#threshold').addEventListener('input', decide);
  $('#embed').addEventListener('click', downloadEmbeddings);
  $('#eval-start').addEventListener('click', startEvaluation);
  $('#eval-cancel').addEventListener('click', cancelEvaluation);
  $('#key-use').addEventListener('click', async () => {
    apiKey = $('#api-key').value || null;
    if (await checkKey()) {
      $('#error').textContent = '';
      for (const n of [1, 2]) if (sides[n].file && !sides[n].faces.length) loadPhoto(n, sides[n].file);
    } else {
      $('#error').textContent = 'That key is not accepted.';
    }
  });
  checkKey().catch(() => { $('#error').textContent = 'The server cannot be reached.'; });
});
