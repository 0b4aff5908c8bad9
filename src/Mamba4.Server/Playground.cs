namespace Mamba4.Server;

/// <summary>
/// The page served at <c>/</c>: type a prompt and watch tokens stream; enter a history and see recommendations.
/// With an API key (its field; kept in sessionStorage) every call sends <c>Authorization: Bearer KEY</c>; every
/// call sends Content-Type: application/json. Server text (errors, items) goes in as text, never as HTML.
/// </summary>
public static class Playground
{
    public const string Html = """
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mamba4 playground</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d2330; background: #f5f6f8; }
  body { max-width: 980px; margin: 24px auto; padding: 0 16px; }
  h1 { font-size: 22px; margin: 0 0 4px; }
  #status { color: #5b6475; font-size: 13px; margin-bottom: 18px; }
  section { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: 16px; margin-bottom: 18px; }
  h2 { font-size: 16px; margin: 0 0 12px; }
  textarea, input { font: 14px ui-monospace, monospace; border: 1px solid #c6ccd6; border-radius: 5px; padding: 6px; box-sizing: border-box; }
  textarea { width: 100%; height: 70px; }
  .row { display: flex; gap: 12px; flex-wrap: wrap; align-items: end; margin: 10px 0; }
  label { font-size: 12px; color: #5b6475; display: flex; flex-direction: column; gap: 3px; }
  .row input { width: 90px; }
  button { font-size: 14px; padding: 7px 16px; border-radius: 5px; border: 0; background: #2f6fdf; color: #fff; cursor: pointer; }
  button.secondary { background: #8a93a3; }
  button:disabled { opacity: .5; cursor: default; }
  #output { white-space: pre-wrap; font: 14px ui-monospace, monospace; background: #f8f9fb; border: 1px solid #e3e6ec; border-radius: 5px; padding: 10px; min-height: 80px; }
  #output .prompt { color: #8a93a3; }
  #gen-info, #rec-info { font-size: 12px; color: #5b6475; margin-top: 6px; }
  #key-row { display: flex; gap: 8px; align-items: center; font-size: 12px; color: #5b6475; margin-bottom: 12px; }
  #key-row input { width: 260px; }
  table { border-collapse: collapse; margin-top: 10px; font-size: 14px; }
  td, th { padding: 3px 14px 3px 0; text-align: left; }
  th { color: #5b6475; font-weight: 500; }
  .bar { background: #2f6fdf; height: 8px; border-radius: 4px; }
  .error { color: #b42318; }
</style>
</head>
<body>
<h1>Mamba4 playground</h1>
<div id="status">connecting…</div>
<div id="key-row"><label for="api-key">API key (if the server has --api-key)</label><input id="api-key" type="password" autocomplete="off" placeholder="none"></div>

<section id="text">
  <h2>Text generation <span id="prompt-kind" style="font-weight:400;color:#5b6475"></span></h2>
  <textarea id="prompt"></textarea>
  <div class="row">
    <label>max tokens <input id="max_tokens" type="number" value="64" min="1"></label>
    <label>temperature <input id="temperature" type="number" value="0.8" step="0.1" min="0"></label>
    <label>top p <input id="top_p" type="number" value="0.95" step="0.05" min="0" max="1"></label>
    <label>top k <input id="top_k" type="number" value="0" min="0"></label>
    <label>seed <input id="seed" type="number" value="1"></label>
    <button id="go">Generate</button>
    <button id="stop" class="secondary" disabled>Stop</button>
  </div>
  <div id="output"></div>
  <div id="gen-info"></div>
</section>

<section id="rec">
  <h2>Recommendations</h2>
  <div class="row">
    <label style="flex:1">history (item ids, oldest first) <input id="history" style="width:100%" value="3, 17, 4, 29, 11"></label>
    <label>k <input id="k" type="number" value="10" min="1"></label>
    <label>user (event API) <input id="user" value="demo"></label>
  </div>
  <div class="row">
    <button id="recommend">Recommend for this history</button>
    <button id="post-events" class="secondary">Append as events to user</button>
    <button id="user-recs" class="secondary">User's recommendations</button>
  </div>
  <div id="rec-info"></div>
  <table id="rec-table"></table>
</section>

<script>
const $ = id => document.getElementById(id);
let health = null, abort = null;

// The key stays in this tab (sessionStorage), and goes only to this server.
$('api-key').value = sessionStorage.getItem('mamba4-api-key') || '';
$('api-key').oninput = () => sessionStorage.setItem('mamba4-api-key', $('api-key').value);
function headers() {
  const h = { 'Content-Type': 'application/json' };
  if ($('api-key').value) h['Authorization'] = 'Bearer ' + $('api-key').value;
  return h;
}
// Elements from text: server text never becomes HTML.
function el(tag, className, text) { const e = document.createElement(tag); if (className) e.className = className; if (text !== undefined) e.textContent = text; return e; }

function ids(text) { return text.split(/[\s,]+/).filter(s => s.length).map(Number); }
function errorText(body, status) { try { return JSON.parse(body).error.message; } catch { return `HTTP ${status}`; } }

async function refresh() {
  try {
    health = await (await fetch('/health')).json();
    const parts = [];
    if (health.model) parts.push(`model ${health.model}${health.tokenizer ? '' : ' (token ids only)'} · ${health.active_streams}/${health.stream_capacity} streams active`);
    else parts.push('no language model (--model)');
    parts.push(health.rec_model_version ? `recommender ${health.rec_model_version} · ${health.rec_n_items - 1} items` : 'no recommender (--rec)');
    $('status').textContent = parts.join('  ·  ');
    $('text').style.opacity = health.model ? 1 : .45;
    $('rec').style.opacity = health.rec_model_version ? 1 : .45;
    $('prompt-kind').textContent = health.tokenizer ? '(text prompt)' : '(prompt: token ids, comma-separated)';
    if (!$('prompt').value) $('prompt').value = health.tokenizer ? 'The cat' : '1, 5, 9';
  } catch (e) { $('status').textContent = 'server unreachable'; }
}

$('go').onclick = async () => {
  const out = $('output');
  const promptText = $('prompt').value;
  const prompt = health && health.tokenizer ? promptText : ids(promptText);
  const gen = el('span');
  out.replaceChildren(el('span', 'prompt', health && health.tokenizer ? promptText : promptText + ' → '), gen);
  const body = { prompt, stream: true, max_tokens: +$('max_tokens').value, temperature: +$('temperature').value,
                 top_p: +$('top_p').value, top_k: +$('top_k').value, seed: +$('seed').value };
  abort = new AbortController();
  $('go').disabled = true; $('stop').disabled = false;
  const t0 = performance.now(); let first = 0, count = 0;
  // The DOM changes at most once a frame (text appended, not re-set), and the read loop yields every 50 ms: a stream
  // faster than the page renders must not starve the page (Stop stays clickable, the cost stays linear in the text).
  let text = document.createTextNode(''); gen.appendChild(text);
  let pending = '', info = '', frame = 0, lastYield = t0;
  $('gen-info').textContent = '';
  const flush = () => { frame = 0; if (pending) { text.appendData(pending); pending = ''; } if (info) $('gen-info').textContent = info; };
  const show = () => { if (!frame) frame = requestAnimationFrame(flush); };
  // an error in the stream: shown where it happened, later text after it
  const error = message => { flush(); gen.appendChild(el('span', 'error', ' ' + message)); text = document.createTextNode(''); gen.appendChild(text); };
  try {
    const r = await fetch('/v1/completions', { method: 'POST', headers: headers(), body: JSON.stringify(body), signal: abort.signal });
    if (!r.ok) { gen.replaceChildren(el('span', 'error', errorText(await r.text(), r.status))); return; }
    const reader = r.body.getReader(); const dec = new TextDecoder(); let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, i); buf = buf.slice(i + 2);
        if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
        const chunk = JSON.parse(ev.slice(6));
        if (chunk.error) { error(chunk.error.message); continue; }
        const c = chunk.choices[0];
        if (!first) first = performance.now();
        count += c.token_ids.length;
        pending += c.text !== undefined ? c.text : (count > 1 ? ', ' : '') + c.token_ids.join(', ');
        const secs = (performance.now() - first) / 1000;
        info = `${count} tokens · first after ${Math.round(first - t0)} ms` + (count > 1 ? ` · ${((count - 1) / secs).toFixed(1)} tokens/s` : '') + (c.finish_reason ? ` · finished: ${c.finish_reason}` : '');
        show();
      }
      if (performance.now() - lastYield > 50) { await new Promise(r => setTimeout(r, 0)); lastYield = performance.now(); }
    }
  } catch (e) { if (e.name !== 'AbortError') error(e); }
  finally { if (frame) cancelAnimationFrame(frame); flush(); $('go').disabled = false; $('stop').disabled = true; refresh(); }
};
$('stop').onclick = () => abort && abort.abort();

function showItems(result, label) {
  const t = $('rec-table');
  if (result.error) { $('rec-info').replaceChildren(el('span', 'error', result.error)); t.replaceChildren(); return; }
  $('rec-info').textContent = `${label} · history length ${result.length} · model ${result.model_version}`;
  const max = Math.max(...result.items.map(i => i.score)), min = Math.min(...result.items.map(i => i.score));
  const row = (tag, cells) => { const tr = el('tr'); for (const c of cells) { const td = el(tag); td.append(c); tr.appendChild(td); } return tr; };
  t.replaceChildren(row('th', ['#', 'item', 'score', '']), ...result.items.map((it, n) => {
    const bar = el('div', 'bar'); bar.style.width = `${20 + 180 * (it.score - min) / ((max - min) || 1)}px`;
    return row('td', [String(n + 1), String(it.item), it.score.toFixed(4), bar]);
  }));
}
async function call(method, url, body) {
  const r = await fetch(url, { method, headers: headers(), body: body && JSON.stringify(body) });
  const text = await r.text();
  return r.ok ? JSON.parse(text) : { error: errorText(text, r.status) };
}
$('recommend').onclick = async () => showItems(await call('POST', '/v1/recommend', { history: ids($('history').value), k: +$('k').value }), 'POST /v1/recommend');
$('post-events').onclick = async () => {
  const u = encodeURIComponent($('user').value);
  const r = await call('POST', `/v1/users/${u}/events`, { items: ids($('history').value) });
  if (r.error) { showItems(r); return; }
  showItems(await call('GET', `/v1/users/${u}/recommendations?k=${+$('k').value}`), `user ${r.user}: ${r.added} events appended`);
};
$('user-recs').onclick = async () => showItems(await call('GET', `/v1/users/${encodeURIComponent($('user').value)}/recommendations?k=${+$('k').value}`), `user ${$('user').value}`);
// /#demo runs both panels once on load (for a headless-browser check of the page).
refresh().then(() => { if (location.hash === '#demo') { if (health.model) $('go').click(); if (health.rec_model_version) $('recommend').click(); } });
</script>
</body>
</html>
""";
}
