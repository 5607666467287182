// Syntax colours for the code blocks in replies: keywords, strings, comments and numbers become
// spans with classes (`tok-kw`, `tok-str`, `tok-com`, `tok-num`; the colours are in app.css).
//
// Written here rather than taken from a library: the languages a family's replies show are a
// handful (Python, JavaScript/TypeScript/JSON, shell, Rust, C-like, HTML/CSS, SQL), and colouring
// them needs only their comments, strings, numbers and keywords, a few kilobytes; a highlighting
// library is tens of kilobytes covering hundreds of languages, and the common ones build HTML
// strings, which this page never parses (everything here is text nodes and spans, so hostile
// text in a reply stays text).

const words = (s) => new Set(s.split(/\s+/).filter(Boolean));

const NUMBER = /\b(?:0[xX][\da-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)(?:[a-zA-Z]\w*)?/.source;
const WORD = /[A-Za-z_$][\w$]*/.source;
const DQ = /"(?:\\[\s\S]|[^"\\\n])*"?/.source;
const SQ = /'(?:\\[\s\S]|[^'\\\n])*'?/.source;
const SLASH_COMMENTS = [/\/\/.*/.source, /\/\*[\s\S]*?(?:\*\/|$)/.source];

const JS_KEYWORDS = words(`
  break case catch class const continue debugger default delete do else export extends finally
  for function if import in instanceof let new return super switch this throw try typeof var void
  while with yield async await of static get set true false null undefined NaN Infinity
  interface type enum implements private public protected readonly as from declare namespace
  abstract keyof satisfies`);

const C_KEYWORDS = words(`
  auto break case char const continue default do double else enum extern float for goto if int
  long register return short signed sizeof static struct switch typedef union unsigned void
  volatile while class public private protected new delete this true false null nullptr NULL try
  catch throw namespace using template typename virtual override bool include define ifdef ifndef
  endif pragma import package final extends implements boolean byte String string var let val
  fun func go defer chan map range interface type struct nil async await foreach in is as out
  readonly internal sealed operator friend inline constexpr noexcept std println printf`);

/** Each language: its comments, strings and keywords (`ci`: keywords in any case). */
const LANGS = {
  python: {
    comments: [/#.*/.source],
    strings: [
      /[rRbBfFuU]{0,2}"""[\s\S]*?(?:"""|$)/.source, /[rRbBfFuU]{0,2}'''[\s\S]*?(?:'''|$)/.source,
      `[rRbBfFuU]{0,2}${DQ}`, `[rRbBfFuU]{0,2}${SQ}`,
    ],
    keywords: words(`
      False None True and as assert async await break class continue def del elif else except
      finally for from global if import in is lambda nonlocal not or pass raise return try while
      with yield match case self print`),
  },
  js: {
    comments: SLASH_COMMENTS,
    strings: [DQ, SQ, /`(?:\\[\s\S]|[^`\\])*`?/.source],
    keywords: JS_KEYWORDS,
  },
  shell: {
    // A `#` starts a comment only at the start of a word (`$#` and `a#b` are not comments).
    comments: [/(?<![^\s;|&(])#.*/.source],
    strings: [DQ, /'[^']*'?/.source],
    keywords: words(`
      if then else elif fi for while until do done case esac in function return export local
      echo cd sudo set unset source exit read shift trap alias`),
  },
  rust: {
    comments: SLASH_COMMENTS,
    // A char ('a', '\n') is a string; a lifetime ('a without a closing quote) is not.
    strings: [/b?r(?<hashes>#*)"[\s\S]*?(?:"\k<hashes>|$)/.source, `b?${DQ}`, /b?'(?:\\[\s\S][^'\n]{0,6}|[^'\\\n])'/.source],
    keywords: words(`
      as async await break const continue crate dyn else enum extern false fn for if impl in let
      loop match mod move mut pub ref return self Self static struct super trait true type unsafe
      use where while Some None Ok Err Box Vec String Option Result`),
  },
  c: {
    comments: SLASH_COMMENTS,
    strings: [DQ, SQ, /`[^`]*`?/.source],
    keywords: C_KEYWORDS,
  },
  css: {
    comments: [/\/\*[\s\S]*?(?:\*\/|$)/.source],
    strings: [DQ, SQ],
    // At-rules and `!important` as keywords, colours as numbers.
    extra: [[/@[\w-]+|!important/.source, 'tok-kw'], [/#[\da-fA-F]{3,8}\b/.source, 'tok-num']],
    keywords: words(''),
    number: /-?(?:\d+\.?\d*|\.\d+)(?:%|[a-zA-Z]+)?/.source,
    word: /[A-Za-z_-][\w-]*/.source,
  },
  html: {
    comments: [/<!--[\s\S]*?(?:-->|$)/.source],
    strings: [/"[^"]*"?/.source, /'[^']*'?/.source],
    // Tag names and their brackets as keywords, entities as numbers; text between tags is
    // plain.
    extra: [[/<\/?[A-Za-z][\w:.-]*|\/?>/.source, 'tok-kw'], [/&#?\w+;/.source, 'tok-num']],
    keywords: words(''),
    number: /(?!)/.source,
  },
  sql: {
    comments: [/--.*/.source, /\/\*[\s\S]*?(?:\*\/|$)/.source],
    strings: [/'(?:''|[^'])*'?/.source, /"(?:""|[^"])*"?/.source],
    ci: true,
    keywords: words(`
      select from where insert into values update set delete create table drop alter add column
      index primary key foreign references not null and or in is like between join left right
      inner outer full cross on group by order having limit offset as distinct union all exists
      case when then else end count sum avg min max begin commit rollback transaction integer int
      text real blob varchar default unique check view trigger if desc asc with returning true
      false replace pragma explain`),
  },
};

const ALIASES = {
  python: 'python', py: 'python', python3: 'python', py3: 'python',
  javascript: 'js', js: 'js', jsx: 'js', mjs: 'js', cjs: 'js', node: 'js',
  typescript: 'js', ts: 'js', tsx: 'js', json: 'js', jsonc: 'js', json5: 'js',
  sh: 'shell', bash: 'shell', shell: 'shell', zsh: 'shell', console: 'shell', shellsession: 'shell',
  rust: 'rust', rs: 'rust',
  c: 'c', h: 'c', cpp: 'c', 'c++': 'c', cc: 'c', hpp: 'c', cxx: 'c', java: 'c', cs: 'c',
  csharp: 'c', 'c#': 'c', go: 'c', golang: 'c', kotlin: 'c', kt: 'c', swift: 'c', scala: 'c',
  dart: 'c', php: 'c',
  html: 'html', htm: 'html', xml: 'html', svg: 'html', vue: 'html', xhtml: 'html',
  css: 'css', scss: 'css', less: 'css',
  sql: 'sql', sqlite: 'sql', postgresql: 'sql', postgres: 'sql', mysql: 'sql', psql: 'sql',
};

// Longer code is shown plain: a reply re-renders as it streams, and colouring must never make
// the page slow.
const MOST_CHARS = 100_000;

const compiled = new Map();

function lexer(name) {
  if (compiled.has(name)) return compiled.get(name);
  const l = LANGS[name];
  // One alternation, tried left to right at each place: comments, strings, the language's own
  // extras, numbers, then words (a keyword, or plain).
  const parts = [
    [l.comments.join('|'), 'tok-com'],
    [l.strings.join('|'), 'tok-str'],
    ...(l.extra || []),
    [l.number || NUMBER, 'tok-num'],
    [l.word || WORD, null],
  ];
  // Named groups, so a language's own groups inside a part (Rust's raw strings) shift nothing.
  const re = new RegExp(parts.map(([src], k) => `(?<g${k}>${src})`).join('|'), 'g');
  const made = { re, classes: parts.map(([, cls]) => cls), keywords: l.keywords, ci: !!l.ci };
  compiled.set(name, made);
  return made;
}

/** The language of a fence's info string (```py, ```TypeScript), or null if not coloured. */
export function languageOf(info) {
  const key = String(info || '').trim().toLowerCase().replace(/^language-/, '');
  // Own keys only: a fence tagged `constructor` or `__proto__` is no language.
  return Object.hasOwn(ALIASES, key) ? ALIASES[key] : null;
}

/**
 * `text` as nodes for a <code> element, coloured as `info`'s language: text nodes, and spans
 * whose text is the code's own. Null when the language is not one coloured here (the caller
 * shows the text plain).
 */
export function highlight(text, info) {
  const name = languageOf(info);
  if (!name || text.length > MOST_CHARS) return null;
  const { re, classes, keywords, ci } = lexer(name);
  re.lastIndex = 0;
  const out = [];
  let plain = '';
  let last = 0;
  const span = (cls, s) => {
    if (plain) { out.push(plain); plain = ''; }
    const el = document.createElement('span');
    el.className = cls;
    el.textContent = s;
    out.push(el);
  };
  let m;
  while ((m = re.exec(text))) {
    if (m[0] === '') { re.lastIndex++; continue; }
    plain += text.slice(last, m.index);
    last = re.lastIndex;
    const group = classes.findIndex((_, k) => m.groups[`g${k}`] !== undefined);
    const cls = classes[group];
    if (cls) span(cls, m[0]);
    else if (keywords.has(ci ? m[0].toLowerCase() : m[0])) span('tok-kw', m[0]);
    else plain += m[0];
  }
  plain += text.slice(last);
  if (plain) out.push(plain);
  return out;
}
