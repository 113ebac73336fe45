using System.Net;
using System.Net.Http.Headers;
using Parquet;
using Parquet.Schema;
using TwinSeal.Apps;
using TwinSeal.Cli.Demo;
using TwinSeal.Enclave;
using TwinSeal.Party;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.EndToEnd.Tests;

/// <summary>Parquet in through the control API, schema and bad-row options in the query, released rows out as CSV or Parquet.</summary>
public sealed class TableFormatsFlowTests(TwoPartyFixture f) : IClassFixture<TwoPartyFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<byte[]> CustomersParquetAsync()
    {
        DataField[] fields = [new DataField<string>("email"), new DataField<int?>("visits")];
        using var ms = new MemoryStream();
        await using (var writer = await ParquetWriter.CreateAsync(new ParquetSchema(fields), ms, cancellationToken: Ct))
        {
            using (var rg = writer.CreateRowGroup())
            {
                await rg.WriteAsync(fields[0], ["a@x.org", "b@x.org", "c@x.org"], null);
                await rg.WriteAsync<int>(fields[1], new int?[] { 1, null, 3 });
            }
            using (var rg = writer.CreateRowGroup())
            {
                await rg.WriteAsync(fields[0], ["d@x.org", "日本@x.org"], null);
                await rg.WriteAsync<int>(fields[1], new int?[] { 4, 5 });
            }
        }
        return ms.ToArray();
    }


    private async Task<(HttpStatusCode Status, string Body)> PutTableAsync(string pathAndQuery, byte[] body, string contentType)
    {
        using var http = TwoPartyFixture.PinnedClient(f.Party1.Endpoint);
        using var req = new HttpRequestMessage(HttpMethod.Put, $"{f.Party1.Endpoint.Url}/control/v1{pathAndQuery}") { Content = new ByteArrayContent(body) };
        req.Content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", f.Token("party1"));
        using var resp = await http.SendAsync(req, Ct);
        return (resp.StatusCode, await resp.Content.ReadAsStringAsync(Ct));
    }

    [Fact]
    public async Task A_parquet_upload_is_recognised_by_its_content_type()
    {
        var (status, body) = await PutTableAsync("/tables/pq_by_type?source=customers.parquet", await CustomersParquetAsync(), "application/vnd.apache.parquet");

        Assert.Equal(HttpStatusCode.OK, status);
        var loaded = ProtocolJson.Parse<LoadTableResult>(System.Text.Encoding.UTF8.GetBytes(body), "loaded");
        Assert.Equal((TableFormat.Parquet, 5L), (loaded.Format, loaded.Rows));
        Assert.Equal(["email", "visits"], loaded.Columns);
    }

    [Fact]
    public async Task A_schema_mismatch_in_the_query_is_a_problem_naming_the_column_and_the_file()
    {
        var file = await CustomersParquetAsync();

        var e = await Assert.ThrowsAsync<RemoteProblemException>(() =>
            f.Control1.PutAsync<LoadTableResult>("/tables/pq_bad?format=parquet&source=customers.parquet&schema=email:string,visits:decimal", file));

        Assert.Equal("schema-mismatch", e.Code);
        Assert.Contains("file 'customers.parquet' (table 'pq_bad'): column 2 'visits' is int in the file, the schema expects decimal", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Skip_bad_rows_in_the_query_skips_and_reports_them()
    {
        var loaded = await f.Control1.PutAsync<LoadTableResult>("/tables/pq_skip?format=parquet&skipBadRows=true&schema=email!,visits:int!", await CustomersParquetAsync());

        Assert.Equal((4L, 1L), (loaded.Rows, loaded.SkippedRows));
        var bad = Assert.Single(loaded.Skipped!);
        Assert.Equal((0, 1L, "visits"), (bad.RowGroup!.Value, bad.Row!.Value, bad.Column));
    }

    [Fact]
    public async Task Released_rows_are_written_as_parquet_for_a_parquet_output_file_and_equal_the_csv_output()
    {
        var key = (await f.Control1.PostAsync<KeyInfo>("/keys", new CreateKeyCommand("formats"))).KeyId;
        var e1 = await f.Control1.GetAsync<EnclaveDescription>("/enclave");
        var e2 = await f.Control2.GetAsync<EnclaveDescription>("/enclave");
        var policy = new AuthorityPolicy(
            [new UsageGrant("party1", new ReferenceValues(e1.Platform, [e1.Measurement], e1.PlatformTests)),
             new UsageGrant("party2", new ReferenceValues(e2.Platform, [e2.Measurement], e2.PlatformTests))],
            ["party1", "party2"], ChangeMethod.AllParties, new OutputPolicy("secure-match", "email", ResultKind.JoinedRows, "party2"));
        var p = await f.Control1.PostAsync<ProposalStatus>("/proposals", new ProposeCommand(key, 0, policy));
        await f.Control2.PostAsync<ProposalStatus>("/approvals", new ApproveCommand(key, p.ProposalId, p.ProposalHash));
        await f.Control1.PutAsync<LoadTableResult>("/tables/pq_customers?format=parquet", await CustomersParquetAsync());
        await f.Control2.PutAsync<LoadTableResult>("/tables/pq_subscribers", "email,plan\nb@x.org,gold\n日本@x.org,\"a, b\"\nz@x.org,none\n"u8.ToArray());
        var sent = await f.Control1.PostAsync<SendTableResult>("/send", new SendTableCommand(key, "pq_customers", f.Party2.Endpoint.Url, f.Party2.Endpoint.Fingerprint));
        var csvFile = Path.Combine(f.Work, "party2", "results", "joined.csv");
        var parquetFile = Path.Combine(f.Work, "party2", "results", "formats", "joined.parquet");

        var asCsv = await f.Control2.PostAsync<ComputeResult>("/compute", new ComputeCommand(key, sent.DatasetId, "pq_subscribers", "joined.csv"));
        var asParquet = await f.Control2.PostAsync<ComputeResult>("/compute", new ComputeCommand(key, sent.DatasetId, "pq_subscribers", "formats/joined.parquet"));

        Assert.Equal((null, null), (asCsv.DistinctMatchedKeys, asParquet.DistinctMatchedKeys));
        Assert.Equal(parquetFile, asParquet.JoinedRowsPath);
        var csv = TableCsv.Parse(await File.ReadAllBytesAsync(csvFile, Ct), "joined.csv");
        await using var reader = await ParquetReader.CreateAsync(parquetFile, cancellationToken: Ct);
        var fields = reader.Schema.DataFields;
        Assert.Equal(csv.Columns, fields.Select(x => x.Name));
        var rows = new List<string[]>();
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            var rg = reader.OpenRowGroupReader(g);
            var columns = new string?[fields.Length][];
            for (var c = 0; c < fields.Length; c++)
            {
                columns[c] = new string?[rg.RowCount];
                await rg.ReadAsync(fields[c], columns[c]!, null, Ct);
            }
            for (var r = 0; r < rg.RowCount; r++) rows.Add(columns.Select(col => col[r] ?? "").ToArray());
        }
        Assert.Equal(csv.Rows, rows);
    }

    [Fact]
    public async Task Released_rows_written_to_a_csv_output_file_are_byte_for_byte_the_csv_the_engine_released()
    {
        // Megabytes of joined rows: they reach the file in many reads of the isolated area's channel.
        var data = DataGenerator.Generate(Path.Combine(f.Work, "streamed-data"), 30_000, 1.0, 11);
        var output = new OutputPolicy("secure-match", "email", ResultKind.JoinedRows, "party2");
        var key = await f.AgreeKeyAsync("streamed", output);
        var customers = await File.ReadAllBytesAsync(data.Party1Csv, Ct);
        var subscribers = await File.ReadAllBytesAsync(data.Party2Csv, Ct);
        await f.Control1.PutAsync<LoadTableResult>("/tables/streamed_customers", customers);
        await f.Control2.PutAsync<LoadTableResult>("/tables/streamed_subscribers", subscribers);
        var dataset = await f.SendAsync(key, "streamed_customers");

        var result = await f.Control2.PostAsync<ComputeResult>("/compute", new ComputeCommand(key, dataset, "streamed_subscribers", "streamed/joined.csv"));

        var released = new SecureMatchApp().Run(new AppInput(TableCsv.Parse(subscribers, "own"), TableCsv.Parse(customers, "peer"), output, "party2", "party1")).Rows!.Csv;
        Assert.True(released.Length > 1 << 20, $"{released.Length} bytes of joined rows fit in one read of the channel.");
        Assert.Equal(released.ToArray(), await File.ReadAllBytesAsync(result.JoinedRowsPath!, Ct));
        Assert.Equal(new[] { result.JoinedRowsPath! }, Directory.GetFiles(Path.GetDirectoryName(result.JoinedRowsPath)!));
    }
}
