import { parse } from 'yaml';

export interface WrittenFile {
  readonly path: string;
  readonly content: string;
  readonly owner: string;
  readonly permissions: string;
  readonly defer?: boolean;
}

/** The files a cloud-config document writes, keyed by path. */
export function writtenFiles(userData: string): Map<string, WrittenFile> {
  const doc = parse(userData) as { write_files?: WrittenFile[] };
  return new Map((doc.write_files ?? []).map((f) => [f.path, f]));
}

export function fileContent(userData: string, path: string): string {
  const file = writtenFiles(userData).get(path);
  if (!file) throw new Error(`the document writes no ${path}`);
  return file.content;
}
