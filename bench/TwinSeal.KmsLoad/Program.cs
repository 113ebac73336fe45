using TwinSeal.KmsLoad;

return await LoadCommand.Build().Parse(args).InvokeAsync();
