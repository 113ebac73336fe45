using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using TwinSeal.Kms;
using TwinSeal.Kms.Http;
using TwinSeal.Protocol;

namespace TwinSeal.Party;

/// <summary>
/// The control API (<c>/control/v1</c>): the participant's own calls to its party host, with the party's control
/// token. Every KMS operation goes through the host's signed KMS client; tables go into the isolated area.
/// </summary>
internal static class ControlApi
{
    // A table the participant loads into its own isolated area; peer uploads have their own limit (PeerUploadLimits).
    public const long MaxTableBytes = 4L << 30;

    public static void MapControl(this WebApplication app, PartyIdentity identity, Func<PartyHost> host)
    {
        var g = app.MapGroup("/control/v1").WithTags("Control");
        g.AddEndpointFilter(async (ctx, next) =>
        {
            var auth = ctx.HttpContext.Request.Headers.Authorization.ToString();
            if (!auth.StartsWith("Bearer ", StringComparison.Ordinal) || !identity.IsControlToken(auth["Bearer ".Length..]))
                throw KmsException.Unauthenticated("control-token-required", "The control API needs the party's control token (control.token in the party folder).");
            try
            {
                return await next(ctx);
            }
            catch (RemoteProblemException e)
            {
                throw new KmsException(e.Status is >= 400 and < 500 ? e.Status : 502, e.Code, e.Message);
            }
            // A KMS that lost or forked what this party witnessed is the KMS's failure, not the request's: 502 by the one mapping.
            catch (ProtocolException e) when (e is not KmsException and not KmsRollbackException)
            {
                throw new KmsException(e.Code == "malformed-request" ? 400 : 422, e.Code, e.Message);
            }
        });

        g.MapGet("/enclave", async () => Results.Json(await host().DescribeAsync(), ProtocolJson.Options));
        g.MapPost("/register", async (HttpRequest req) =>
        {
            // No body asks a KMS that allows self-registration; otherwise the body carries what admits this party.
            var body = await HttpsLoopbackHost.ReadBodyAsync(req, 64 * 1024);
            var cmd = body.Length == 0 ? new RegisterCommand() : HttpsLoopbackHost.ParseJson<RegisterCommand>(req, body, "registration");
            return Results.Json(await host().Kms.RegisterAsync(cmd.Invitation, cmd.AdminToken), ProtocolJson.Options);
        });
        g.MapPost("/keys", async (HttpRequest req) =>
        {
            var cmd = HttpsLoopbackHost.ParseJson<CreateKeyCommand>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 64 * 1024), "create key");
            return Results.Json(await host().Kms.CreateKeyAsync(cmd.Label), ProtocolJson.Options);
        });
        g.MapPost("/proposals", async (HttpRequest req) =>
        {
            var cmd = HttpsLoopbackHost.ParseJson<ProposeCommand>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 256 * 1024), "proposal");
            return Results.Json(await host().Kms.ProposeAsync(cmd.KeyId, new ChangeProposal(cmd.BaseVersion, cmd.Policy)), ProtocolJson.Options);
        });
        g.MapPost("/approvals", async (HttpRequest req) =>
        {
            var cmd = HttpsLoopbackHost.ParseJson<ApproveCommand>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 64 * 1024), "approval");
            return Results.Json(await host().Kms.ApproveAsync(cmd.KeyId, cmd.ProposalId, cmd.ProposalHash), ProtocolJson.Options);
        });
        g.MapGet("/keys/{keyId}", async (string keyId) => Results.Json(await host().Kms.GetKeyAsync(keyId), ProtocolJson.Options));
        g.MapPost("/keys/{keyId}/rotate", async (string keyId) => Results.Json(await host().Kms.RotateKeyAsync(keyId), ProtocolJson.Options));
        g.MapDelete("/keys/{keyId}", async (string keyId) => Results.Json(await host().Kms.DeleteKeyAsync(keyId), ProtocolJson.Options));
        g.MapPost("/keys/{keyId}/deletion/cancel", async (string keyId) => Results.Json(await host().Kms.CancelDeletionAsync(keyId), ProtocolJson.Options));
        g.MapPost("/keys/{keyId}/lifecycle", async (HttpRequest req, string keyId) =>
        {
            var proposal = HttpsLoopbackHost.ParseJson<LifecycleProposal>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 64 * 1024), "lifecycle proposal");
            return Results.Json(await host().Kms.ProposeLifecycleAsync(keyId, proposal), ProtocolJson.Options);
        });
        g.MapGet("/keys/{keyId}/authority", async (string keyId) => Results.Json(await host().Kms.GetAuthorityAsync(keyId), ProtocolJson.Options));
        g.MapGet("/keys/{keyId}/proposals/{proposalId}", async (string keyId, string proposalId) => Results.Json(await host().Kms.GetProposalAsync(keyId, proposalId), ProtocolJson.Options));
        g.MapGet("/audit", async (long? after) => Results.Json(await host().Kms.AuditAsync(after ?? 0), ProtocolJson.Options));
        g.MapGet("/audit/verify", async () => Results.Json(await host().Kms.VerifyAuditAsync(), ProtocolJson.Options));
        g.MapPut("/tables/{name}", async (HttpRequest req, string name) =>
        {
            // CSV or Parquet, with an optional expected schema and skipBadRows: see TableLoadRequest for the query.
            var load = TableLoadRequest.From(name, req);
            // The file is the body, or with a path one the host reads from its import folder.
            var path = TableLoadRequest.HostPath(req);
            await using var file = path is null ? null : (host().Imports ?? throw KmsException.Conflict("no-import-folder",
                "This host reads no file from its own disk: it was started without an import folder ('twinseal party serve --import-dir DIR'). Upload the file instead (twinseal table load without --on-host).")).Open(path);
            if (file?.Length > MaxTableBytes) throw new KmsException(413, "table-too-large", $"'{path}' is {file.Length} bytes; a table file is at most {MaxTableBytes} bytes.");
            // A body is passed to the isolated area as it arrives; one cut short is refused there (TableLoader) and reported here.
            var (body, length) = file is null ? await HttpsLoopbackHost.OpenBodyAsync(req, MaxTableBytes) : (file, file.Length);
            LoadTableResult loaded;
            try
            {
                loaded = await host().Tables.LoadAsync(async () => (await host().Enclave.CallAsync(load, body, length)).Reply, load.Source);
            }
            catch (EndOfStreamException) when (file is not null)
            {
                // The isolated area got zeros for the missing part and refused them; the cause is the file.
                throw new KmsException(422, "file-changed", $"'{path}' became shorter while the host read it ({length} bytes when opened): load it again once it is complete.");
            }
            OperationLog.Write($"loaded table '{loaded.Table}': {loaded.Rows} rows, columns {string.Join(", ", loaded.Columns)}");
            return Results.Json(loaded, ProtocolJson.Options);
        });
        g.MapGet("/tables", () => Results.Json(host().Tables.List(), ProtocolJson.Options));
        g.MapGet("/datasets", () => Results.Json(host().Inbox.List(), ProtocolJson.Options));
        g.MapPost("/send", async (HttpRequest req) =>
        {
            var cmd = HttpsLoopbackHost.ParseJson<SendTableCommand>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 64 * 1024), "send");
            return Results.Json(await host().SendAsync(cmd), ProtocolJson.Options);
        });
        g.MapPost("/arrivals", async (HttpRequest req) =>
        {
            var cmd = HttpsLoopbackHost.ParseJson<ArrivalCommand>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 64 * 1024), "arrival order");
            // Refused now rather than when the dataset arrives; the path is resolved again just before the write.
            if (cmd.OutputPath is not null) host().Results.Resolve(cmd.OutputPath);
            host().Tables.RequireUsable(cmd.OwnTable);
            TwinSeal.Kms.Store.PartyRegistry.ValidateId(cmd.From);
            if (cmd.From == identity.PartyId) throw KmsException.BadRequest("self-send", "An arrival order waits for the other party's dataset; this party cannot send to itself.");
            host().Orders.Place(new ArrivalOrder(cmd.KeyId, cmd.From, cmd.OwnTable, cmd.OutputPath, null, cmd.Analysis));
            return Results.Json(cmd, ProtocolJson.Options, statusCode: 202);
        });
        g.MapGet("/results/{id:guid}", (Guid id) =>
        {
            if (host().Orders.Outcome(id) is not { } outcome) throw KmsException.NotFound("result-not-found", $"No result for dataset {id} (no arrival order matched it, or it has not arrived).");
            if (outcome.Error is { } e) throw new KmsException(422, e.Code, e.Message);
            return Results.Json(outcome.Result, ProtocolJson.Options);
        });
        g.MapPost("/compute", async (HttpRequest req) =>
        {
            var cmd = HttpsLoopbackHost.ParseJson<ComputeCommand>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 64 * 1024), "compute");
            return Results.Json(await host().ComputeAsync(cmd), ProtocolJson.Options);
        });
    }
}
