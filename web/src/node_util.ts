/**
 * `node:util` for the page: its `parseArgs`, from the npm polyfill of that same function
 * (`@pkgjs/parseargs`), so the page parses a plan's flags with the CLI's own parser. The
 * build (`tasks/web.ts`) points the bundles' `node:util` imports here.
 */
import "./node_globals.ts";
import { parseArgs } from "@pkgjs/parseargs";

export { parseArgs };
