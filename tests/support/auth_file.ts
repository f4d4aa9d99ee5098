/** Credentials as registry clients keep them: a containers `auth.json` (REGISTRY_AUTH_FILE). */

/** Write an auth file at `path` that gives `user`'s `password` for `registry`; returns `path`. */
export const writeAuthFile = async (
  path: string,
  registry: string,
  user: string,
  password: string,
): Promise<string> => {
  await Deno.writeTextFile(
    path,
    JSON.stringify({ auths: { [registry]: { auth: btoa(`${user}:${password}`) } } }),
  )
  return path
}
