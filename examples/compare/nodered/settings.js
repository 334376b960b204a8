// Node-RED settings for the comparison peer (run.sh copies this next to the generated
// flows.json in a fresh user directory). Headless: no editor, no HTTP server.
const fs = require("fs");

// The user directory is a throwaway made by run.sh; remove it when Node-RED exits.
process.on("exit", () => fs.rmSync(__dirname, { recursive: true, force: true }));

module.exports = {
  flowFile: "flows.json",
  credentialSecret: false,
  httpAdminRoot: false,
  httpNodeRoot: false,
  // Function nodes reach the Sparkplug encoder as global.get("sparkplug"); run.sh puts the
  // npm project of setup.sh on NODE_PATH.
  functionGlobalContext: {
    sparkplug: require("sparkplug-payload").get("spBv1.0"),
  },
  // Errors only: Modbus and MQTT failures. (Warnings would be start-up chatter about the
  // editor features this headless set-up leaves out.)
  logging: { console: { level: "error", metrics: false, audit: false } },
  telemetry: { enabled: false },
};
