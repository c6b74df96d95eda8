/**
 * The fast cloud-config writer gives the yaml package's text byte for byte, or declines and lets the
 * package write it: a document's bytes (and so every host's trigger) never depend on which one ran.
 */
import * as fc from 'fast-check';
import { parse } from 'yaml';
import { emitDocument, stringifyWithPackage } from '../lib/cloud-init/yaml-1-1';
import { synthesizeExample } from './support/example-synth';
import { fuzzParameters } from './support/fuzz-parameters';

/** Pieces of text that change a YAML scalar's style: indicators, spaces, breaks, quotes, implicit types. */
const piece = fc.constantFrom('a', 'Z', '0', '7', ' ', '  ', '\n', '\n\n', '\t', '#', ':', ': ', '-', '- ', '---', '...', '%', '"', "'", '\\', '|', '>', '{', ']', ',', '&', '*', '!', '@', '`', '?', '~', '=', '<<', 'on', 'yes', 'y', 'null', '0x1', '1:20', '2001-01-01', '\u00e9', '\u{1F600}');
/** And those the fast writer always leaves to the package: control characters, CR, a lone surrogate. */
const rare = fc.constantFrom('\r', '\u0000', '\u0085', '\ud800');
const text = fc.oneof({ arbitrary: fc.stringOf(piece, { maxLength: 12 }), weight: 12 }, { arbitrary: fc.stringOf(fc.oneof(piece, rare), { maxLength: 12 }), weight: 1 });
const key = fc.oneof({ arbitrary: fc.constantFrom('path', 'content', 'owner', 'permissions', 'runcmd', 'a_b'), weight: 8 }, { arbitrary: fc.oneof(fc.constantFrom('on', 'y', 'null', 'a b', 'x:', '-k', '<<'), text), weight: 1 });
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  scalar: fc.oneof({ arbitrary: text, weight: 10 }, { arbitrary: fc.oneof(fc.boolean(), fc.integer(), fc.double(), fc.constant(null), fc.constant(undefined)), weight: 1 }),
  map: fc.dictionary(key, tie('node'), { maxKeys: 4 }),
  list: fc.array(tie('node'), { maxLength: 4 }),
  node: fc.oneof({ depthSize: 'small' }, tie('scalar'), tie('map'), tie('list')),
})).node;

describe('the fast cloud-config writer', () => {
  test('writes what the yaml package writes, or declines', () => {
    let written = 0;
    let runs = 0;
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 5 }), (doc) => {
        runs++;
        const fast = emitDocument(doc);
        if (fast === undefined) return;
        written++;
        expect(fast).toBe(stringifyWithPackage(doc));
      }),
      fuzzParameters(3000),
    );
    // Not a test of declining everything: a good share of the documents is the fast writer's.
    expect(written / runs).toBeGreaterThan(0.08);
  });

  test('writes the literal blocks, lists and nested maps of a document itself', () => {
    const doc = {
      disable_root: false,
      apt: { preserve_sources_list: true, sources: {} },
      packages: ['haproxy', 'nodejs'],
      empty: [],
      runcmd: [['a', 'b'].join('\n'), 'one line: quoted', '0644'],
      write_files: [
        { path: '/etc/a', content: 'line 1\n\n  indented\nlast\n', owner: 'root:root', permissions: '0600' },
        { path: '/etc/b', content: 'no final break\nx', nested: { deeper: ['x\ny\n'] } },
      ],
    };
    const fast = emitDocument(doc);
    expect(fast).toBeDefined();
    expect(fast).toBe(stringifyWithPackage(doc));
  });

  test("every document of the default example is the fast writer's", () => {
    const { documents } = synthesizeExample();
    expect(documents.length).toBeGreaterThan(0);
    for (const d of documents) {
      // A document read back is the same data; the fast writer must write all of it, and the same bytes.
      const body = d.userData.slice('#cloud-config\n'.length);
      expect({ host: d.hostname, text: emitDocument(parse(body)) }).toEqual({ host: d.hostname, text: body });
    }
  });
});
