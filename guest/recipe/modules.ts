/** Kernel modules: the closure of the wanted modules over modules.dep, in load order. */

/** A module's name as the kernel sees it (`dm-mod` and `dm_mod` are the same module). */
export const moduleName = (path: string): string =>
  (path.split("/").pop() ?? path).replace(/\.ko(\.[a-z]+)?$/, "").replaceAll("-", "_")

export interface ModuleSelection {
  /** Module paths relative to /lib/modules/VERSION, each after everything it depends on. */
  readonly loadOrder: ReadonlyArray<string>
  /** Wanted modules that are built into the kernel (nothing to load). */
  readonly builtin: ReadonlyArray<string>
}

/**
 * Select `wanted` (by name) and their dependencies from the text of modules.dep and
 * modules.builtin. A name in neither is an error: the kernel cannot provide it.
 */
export const selectModules = (
  wanted: ReadonlyArray<string>,
  modulesDep: string,
  modulesBuiltin: string,
): ModuleSelection => {
  const dependencies = new Map<string, ReadonlyArray<string>>()
  const pathOf = new Map<string, string>()
  for (const line of modulesDep.split("\n")) {
    const [path, deps] = line.split(":")
    if (path === undefined || deps === undefined) continue
    dependencies.set(path, deps.trim() === "" ? [] : deps.trim().split(/\s+/))
    pathOf.set(moduleName(path), path)
  }
  const builtinNames = new Set(
    modulesBuiltin.split("\n").filter((line) => line !== "").map(moduleName),
  )
  const loadOrder: Array<string> = []
  const builtin: Array<string> = []
  const visit = (path: string) => {
    if (loadOrder.includes(path)) return
    for (const dependency of dependencies.get(path) ?? []) visit(dependency)
    loadOrder.push(path)
  }
  for (const name of wanted.map((name) => name.replaceAll("-", "_"))) {
    const path = pathOf.get(name)
    if (path !== undefined) visit(path)
    else if (builtinNames.has(name)) builtin.push(name)
    else throw new Error(`the kernel has no module ${name}, neither loadable nor built in`)
  }
  return { loadOrder, builtin }
}
