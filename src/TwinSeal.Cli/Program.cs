using System.CommandLine;
using TwinSeal.Cli;

return await Verbs.Build().Parse(args).InvokeAsync();
