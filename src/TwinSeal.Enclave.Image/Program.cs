using System.CommandLine;
using TwinSeal.Enclave;

// The isolated area's only entry point, started by the party host (EnclaveProcess) with a fixed environment.
const string Build = "TWINSEAL-ENCLAVE-IMAGE-BUILD-1";

var device = new Option<string>("--device") { Description = "The simulated device folder (attestation key).", Required = true };
var tee = new Option<string>("--tee") { Description = "Evidence backend: sim, amd-sev-snp, intel-tdx, aws-nitro.", DefaultValueFactory = _ => "sim" };
tee.AcceptOnlyFromAmong("sim", "amd-sev-snp", "intel-tdx", "aws-nitro");
var run = new Command("run", "Serve the party host's commands on stdin/stdout.") { device, tee };
run.SetAction(async (pr, ct) => await EnclaveRuntime.RunProcessAsync(new EnclaveOptions(Path.GetFullPath(pr.GetValue(device)!), pr.GetValue(tee)!)));
return await new RootCommand($"TwinSeal isolated area ({Build}).") { run }.Parse(args).InvokeAsync();
